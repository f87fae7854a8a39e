//! The `ssh` executor: tasks on another host, over your own OpenSSH setup.
//!
//! Try it against a private server on 127.0.0.1 (as root; installs openssh-server if needed):
//!
//! ```sh
//! bash scripts/sshd-up.sh                 # prints SSHD READY ... env=<dir>/env
//! cargo run --example ssh_executor        # reads that env file
//! ```
//!
//! or against any host you can `ssh` to: `SSH_HOST=myhost cargo run --example ssh_executor`
//! (user, port and key then come from your `~/.ssh/config`).

use std::sync::LazyLock;

use covalent::executor::ExecutorRef;
use covalent::prelude::*;
use covalent_ssh::SshExecutor;

/// The executor: `SSH_HOST` if set, else the test server written by `scripts/sshd-up.sh`.
static REMOTE: LazyLock<ExecutorRef> = LazyLock::new(|| {
    if let Ok(host) = std::env::var("SSH_HOST") {
        return ExecutorRef::new(SshExecutor::new(host));
    }
    ExecutorRef::new(covalent_examples::test_server_ssh())
});

/// Runs on the remote host.
#[electron(executor = &REMOTE)]
fn where_am_i(label: String) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_default();
    println!("{label}: running as {user} on {}", host.trim());
    format!("{label}@{user}")
}

/// Runs here.
#[electron]
fn join(parts: Vec<String>) -> String {
    parts.join(", ")
}

#[lattice]
fn workflow() -> String {
    join(vec![where_am_i("a"), where_am_i("b")])
}

fn main() -> anyhow::Result<()> {
    let result = covalent::dispatch_sync(workflow())?;
    println!("{result}");
    for n in result.nodes().filter(|n| n.name() == "where_am_i") {
        print!("node {} said: {}", n.id(), n.stdout());
    }
    anyhow::ensure!(result.status() == Status::Completed, "{:?}", result.error());
    Ok(())
}
