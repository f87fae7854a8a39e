//! Helpers shared by the workspace's tests (a dev-dependency only).
//!
//! Tests that need an engine (sshd, Slurm, podman) start it through `scripts/` when the machine
//! allows it; when it cannot be had they are skipped with a message on stderr, or fail when
//! `COVALENT_REQUIRE_ENGINES` is set (as CI sets it), so a missing engine never passes silently.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lives in the workspace")
        .to_path_buf()
}

/// Whether a missing engine fails the test instead of skipping it (`COVALENT_REQUIRE_ENGINES`
/// set to anything but empty or `0`).
pub fn required() -> bool {
    std::env::var("COVALENT_REQUIRE_ENGINES").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Skips (or, when engines are required, fails) the calling test: `why` says what is missing.
pub fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: {why} (COVALENT_REQUIRE_ENGINES is set, so this is a failure)");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: {why} (set COVALENT_REQUIRE_ENGINES=1 to make this a failure)"
    );
}

/// Whether this process runs as root (engines are only started then).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The workspace's `scripts/` directory.
pub fn scripts() -> PathBuf {
    workspace_root().join("scripts")
}

/// Runs `bash scripts/NAME ARGS...`; its last stdout line on success, else why it failed.
pub fn run_script(name: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(scripts().join(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/{name}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/{name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string())
}

/// `cargo run --example NAME` of the examples crate, from the workspace root, with `envs` set
/// and no `COVALENT_CONFIG` inherited; its stdout. Fails the test, with both streams, if the
/// example fails.
pub fn run_example(name: &str, envs: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .args([
            "run",
            "--quiet",
            "-p",
            "covalent-examples",
            "--example",
            name,
        ])
        .env_remove("COVALENT_CONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Median and mean of timings, in milliseconds (for the overhead examples; sorts `xs`).
pub fn median_mean_ms(xs: &mut [std::time::Duration]) -> (f64, f64) {
    xs.sort();
    let median = xs[xs.len() / 2].as_secs_f64() * 1e3;
    let mean = xs.iter().map(std::time::Duration::as_secs_f64).sum::<f64>() / xs.len() as f64 * 1e3;
    (median, mean)
}
