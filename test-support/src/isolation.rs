//! Tests never touch the user's store or configuration: [`isolated_home!`](crate::isolated_home!)
//! gives a test binary (and every process it starts: workers, examples run through cargo,
//! trybuild's pass cases) data and config directories of its own, before `main` runs.
#![allow(unsafe_code)]

use std::path::PathBuf;

/// Set in the environment of an isolated test binary, so the processes it starts keep its
/// directories instead of making their own.
pub const ISOLATED_ENV: &str = "COVALENT_TEST_ISOLATED";

/// Points the default data and config directories (`XDG_DATA_HOME`, `XDG_CONFIG_HOME`) at a
/// fresh directory under the temp dir and removes `COVALENT_HOME` and `COVALENT_CONFIG`, so
/// nothing a test does reaches the user's store or config (a test that names a `data_dir` or a
/// config of its own still gets it). The directory is removed when the process exits. Called by
/// [`isolated_home!`](crate::isolated_home!) before `main`, and first thing by doctests that
/// dispatch (a hidden `# covalent_test_support::isolate_home();` line, while the doctest has no
/// other thread); a process whose parent is isolated already keeps its parent's directories.
pub fn isolate_home() {
    // A process whose parent is isolated keeps its parent's directories; a worker (this test
    // binary re-run to run one task, perhaps on another host) runs no dispatch and may end
    // by a signal, so it makes none.
    if std::env::var_os(ISOLATED_ENV).is_some()
        || std::env::var_os("COVALENT_WORKER_TASK").is_some()
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("covalent-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(dir.join("data"))
        .and_then(|_| std::fs::create_dir_all(dir.join("config")))
    {
        eprintln!("covalent-test-support: cannot make {}: {e}", dir.display());
        std::process::abort();
    }
    // SAFETY: this runs from a constructor before `main`, or first thing in a doctest's
    // `main`: before any other thread of the process exists.
    unsafe {
        std::env::set_var("XDG_DATA_HOME", dir.join("data"));
        std::env::set_var("XDG_CONFIG_HOME", dir.join("config"));
        std::env::remove_var("COVALENT_HOME");
        std::env::remove_var("COVALENT_CONFIG");
        std::env::set_var(ISOLATED_ENV, &dir);
    }
    let _ = DIR.set(dir);
    extern "C" fn cleanup() {
        if let Some(d) = DIR.get() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    // SAFETY: registers a plain function with the C runtime's exit handlers.
    unsafe {
        libc::atexit(cleanup);
    }
}

static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The isolated directory of this test binary (set by
/// [`isolated_home!`](crate::isolated_home!)).
pub fn isolated_dir() -> Option<PathBuf> {
    std::env::var_os(ISOLATED_ENV).map(PathBuf::from)
}

/// Isolates this test binary from the user's store and configuration ([`isolate_home`], run
/// before `main`). Invoke it once at the top level of every integration-test file (each is its
/// own binary), and in a crate's root under `#[cfg(test)]` for its unit tests.
#[macro_export]
macro_rules! isolated_home {
    () => {
        #[used]
        #[allow(unsafe_code)]
        #[unsafe(link_section = ".init_array")]
        static __COVALENT_ISOLATED_HOME: extern "C" fn() = {
            extern "C" fn isolate() {
                $crate::isolate_home()
            }
            isolate
        };
    };
}
