//! Bringing up the engine the container tests run against: podman with runc and the test
//! image that `scripts/podman-image.sh` builds offline (with the shared libraries of this test
//! binary). Done at most once per test binary, only when this machine allows it (root with
//! apt-get); otherwise the test is skipped with a message on stderr, or fails under
//! `COVALENT_REQUIRE_ENGINES=1`.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The image the tests run in.
pub const IMAGE: &str = "localhost/covalent-worker:latest";

/// The container executor as the tests run it: podman with runc and cgroupfs, the test image,
/// no network.
pub fn test_executor() -> covalent_container::ContainerExecutor {
    covalent_container::ContainerExecutor {
        engine: Some(covalent_container::Engine::Podman),
        image: IMAGE.into(),
        runtime: Some("runc".into()),
        cgroup_manager: Some("cgroupfs".into()),
        network: Some("none".into()),
        ..Default::default()
    }
}

pub use covalent_test_support::skip;
use covalent_test_support::{is_root, run_script};

/// podman and the test image: `Ok` when tasks can run in it, else why not.
pub fn podman() -> Result<(), String> {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    UP.get_or_init(|| {
        if is_root() {
            // Idempotent: rebuilds the image only when the files it is made of changed.
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            run_script("podman-image.sh", &[me.as_os_str()])?;
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
