//! Runnable covalent workflows; see `examples/`.

#![forbid(unsafe_code)]

use std::collections::HashMap;

use covalent_ssh::SshExecutor;

/// The ssh executor for the private test server `scripts/sshd-up.sh` starts on 127.0.0.1 (read
/// from the `env` file it writes in `$COVALENT_SSHD_DIR`, default `$TMPDIR/covalent-sshd`); exits
/// the example with a message saying how to start one when there is none.
pub fn test_server_ssh() -> SshExecutor {
    let dir = std::env::var("COVALENT_SSHD_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("covalent-sshd"));
    let text = std::fs::read_to_string(dir.join("env")).unwrap_or_else(|e| {
        eprintln!("no test server ({e}): run `bash scripts/sshd-up.sh` first (or set SSH_HOST)");
        std::process::exit(2)
    });
    let v: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    SshExecutor::new(v["COVALENT_SSH_HOST"])
        .with_port(v["COVALENT_SSH_PORT"].parse().expect("port"))
        .with_username(v["COVALENT_SSH_USER"])
        .with_key_file(v["COVALENT_SSH_KEY"])
        .with_known_hosts(v["COVALENT_SSH_KNOWN_HOSTS"])
}
