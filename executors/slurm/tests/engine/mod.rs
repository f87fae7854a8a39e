//! Bringing up the engines the Slurm tests run against: the single-node cluster of
//! `scripts/slurm-up.sh` and, for the tests through a login node, the loopback sshd of
//! `scripts/sshd-up.sh`. Each is started at most once per test binary, only when it is not up
//! already and this machine allows it (root with apt-get). When an engine cannot be had the
//! test is skipped with a message on stderr, or fails under `COVALENT_REQUIRE_ENGINES=1`.

use std::process::Command;
use std::sync::OnceLock;

pub use covalent_test_support::skip;
use covalent_test_support::{is_root, run_script, scripts};

fn succeeds(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

/// The Slurm cluster: `Ok` when `sbatch` can submit here, else why not.
pub fn slurm() -> Result<(), String> {
    static UP: OnceLock<Result<(), String>> = OnceLock::new();
    UP.get_or_init(|| {
        if succeeds("scontrol ping | grep -q UP && sinfo -h -o %t | grep -Eq 'idle|mix|alloc'") {
            return Ok(());
        }
        if !is_root() {
            return Err("no Slurm cluster here, and starting one needs root".into());
        }
        run_script("slurm-up.sh", &[]).map(|_| ())
    })
    .clone()
}

/// A login node for Slurm over SSH: the sshd of `scripts/sshd-up.sh`, as its env file's
/// variables (`COVALENT_SSH_HOST`, `_PORT`, `_USER`, `_KEY`, `_KNOWN_HOSTS`, `_CONFIG`).
pub fn sshd() -> Result<Vec<(String, String)>, String> {
    static UP: OnceLock<Result<Vec<(String, String)>, String>> = OnceLock::new();
    UP.get_or_init(|| {
        if !scripts().join("sshd-up.sh").exists() {
            return Err("scripts/sshd-up.sh is missing".into());
        }
        if !is_root() {
            return Err("starting the test sshd needs root".into());
        }
        Ok(covalent_test_support::sshd_env()?.into_iter().collect())
    })
    .clone()
}

/// The SSH options of the test login node (the sshd of `scripts/sshd-up.sh`, as its test
/// user), for the Slurm executor's `ssh`; `Err` says why there is none (with Slurm's own
/// reason first when the cluster is not up either).
pub fn login_node_ssh() -> Result<covalent_slurm::SshOptions, String> {
    slurm()?;
    let env = sshd()?;
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok(covalent_slurm::SshOptions {
        hostname: get("COVALENT_SSH_HOST"),
        port: get("COVALENT_SSH_PORT").parse().ok(),
        username: Some(get("COVALENT_SSH_USER")),
        ssh_key_file: Some(get("COVALENT_SSH_KEY").into()),
        known_hosts: Some(get("COVALENT_SSH_KNOWN_HOSTS").into()),
        ..Default::default()
    })
}
