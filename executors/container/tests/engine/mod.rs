//! Bringing up the engine the container tests run against: podman with runc and the test
//! image that `scripts/podman-image.sh` builds offline (with the shared libraries of this test
//! binary). Done at most once per test binary, only when this machine allows it (root with
//! apt-get); otherwise the test is skipped with a message on stderr, or fails under
//! `COVALENT_REQUIRE_ENGINES=1`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The image the tests run in.
pub const IMAGE: &str = "localhost/covalent-worker:latest";

/// Whether a missing engine fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("COVALENT_REQUIRE_ENGINES").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Skips (or, when engines are required, fails) the calling test.
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

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// podman and the test image: `Ok` when tasks can run in it, else why not.
pub fn podman() -> Result<(), String> {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    UP.get_or_init(|| {
        if is_root() {
            // Idempotent: rebuilds the image only when the files it is made of changed.
            let script =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/podman-image.sh");
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            let out = Command::new("bash")
                .arg(script)
                .arg(me)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run scripts/podman-image.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "scripts/podman-image.sh failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            return Ok(());
        }
        let there = Command::new("podman")
            .args(["image", "exists", IMAGE])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if there {
            Ok(())
        } else {
            Err(format!(
                "no podman image {IMAGE}, and building it needs root"
            ))
        }
    })
    .clone()
}
