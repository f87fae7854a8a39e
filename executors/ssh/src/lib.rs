//! The `ssh` executor: runs covalent tasks on another host over SSH, with the user's own
//! OpenSSH setup (config, keys, known hosts, agent).
//!
//! ```no_run
//! use covalent::prelude::*;
//! use covalent_ssh::SshExecutor;
//!
//! #[electron(executor = SshExecutor::new("gpu-box").with_username("me"))]
//! fn heavy(x: u64) -> u64 { x * 2 }
//!
//! #[lattice]
//! fn flow() -> u64 { heavy(21) }
//!
//! # fn main() {
//! covalent_ssh::link();
//! let r = covalent::dispatch_sync(flow()).unwrap();
//! assert_eq!(r.value(), Some(&42));
//! # }
//! ```
//!
//! How a task runs: the program's own binary is copied once per content hash into
//! `remote_cache` on the host; the task envelope goes to a work directory; the worker starts
//! detached (its own session, pid recorded as the job handle) and one SSH session waits for it
//! and brings back its result, stdout and stderr. If that session drops, the executor
//! reconnects and polls until the task ends. Connections are shared (OpenSSH `ControlMaster`),
//! so a task costs one round trip on an open connection, not a handshake. Cancelling or timing
//! out kills the remote process group. Strict host-key checking stays on unless turned off.
//!
//! The handle (host, work directory, then pid) is recorded before the launch, and the work
//! directory keeps a `pid` file: a connection lost for good fails the node as `lost_contact`
//! (not retried) with where the task may still run, and a resume follows the task through its
//! work directory instead of starting another.
//!
//! The handle (host, work directory, then pid) is recorded before the launch, and the work
//! directory keeps a `pid` file: a connection lost for good fails the node as `lost_contact`
//! (not retried) with where the task may still run, and a resume follows the task through its
//! work directory instead of starting another.
//!
//! Register the plugin (so `executor = "ssh"` and `[executors.ssh]` work) by linking the crate:
//! call [`link`] once, or `use covalent_ssh as _;`.

#![deny(unsafe_code)]

mod pools;
mod remote;
mod workers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use covalent::executor::{
    BaseOptions, Executor, ExecutorError, JobHandle, Output, Probe, Task, TaskContext,
};
use serde::{Deserialize, Serialize};

/// Why a remote step failed (the transport's error, under this crate's first name).
pub use covalent_remote::RemoteError as SshError;
pub use covalent_remote::SshOptions;

/// Runs tasks on a host over SSH. Options (`[executors.ssh]` in `covalent.toml`, or fields):
///
/// | option | default | meaning |
/// |---|---|---|
/// | `hostname` | (required) | host name, address, or a `Host` alias of your ssh config |
/// | `username` | ssh's | remote user |
/// | `port` | ssh's | remote port |
/// | `ssh_key_file` | ssh's | private key (`-i`, with `IdentitiesOnly`) |
/// | `ssh_config` | ssh's | an ssh config file (`-F`) |
/// | `known_hosts` | ssh's | a known-hosts file (`UserKnownHostsFile`) |
/// | `strict_host_key_checking` | `true` | refuse unknown or changed host keys; `false` accepts new keys only |
/// | `connect_timeout` | `10s` | time to establish a connection (`"30s"` or a number of seconds) |
/// | `options` | `[]` | more `-o` options for ssh, e.g. `"ProxyJump=bastion"` |
/// | `remote_cache` | `.cache/covalent` | where the binary is kept, per content hash |
/// | `remote_workdir` | `covalent-workdir` | where tasks run |
/// | `create_unique_workdir` | `true` | one directory per dispatch/node/attempt |
/// | `do_cleanup` | `true` | remove the task's work directory afterwards |
/// | `poll_freq` | `0.5` | seconds between polls when the waiting session was lost |
/// | `max_connection_attempts` | `3` | tries per remote step when the connection fails |
/// | `retry_wait_time` | `2.0` | seconds between those tries |
/// | `command_timeout` | `120` | seconds for each remote step other than the task itself |
/// | `env` | `{}` | environment variables for the task |
/// | `pre_launch` / `post_launch` | `[]` | shell commands run in the work directory before / after the task |
/// | `remote_binary` | (ship) | use this binary on the host instead of shipping ours |
/// | `max_sessions`, `control_path` | `8`, ours | sessions at once on the shared connection; your own `ControlMaster` socket ([`SshOptions`]) |
/// | `reuse_workers` | `false` | run tasks on persistent workers, each serving task after task over one SSH session (see below) |
/// | `max_workers` | `max_sessions` − 2 | persistent workers per host |
/// | `hosts` | `[]` | more hosts (`"gpu2"`, `"me@gpu3:2222"`) sharing the other options: a pool (see below) |
/// | `slots_per_host` | `max_workers`, or `max_sessions` − 2 | tasks at once on each host of a pool |
/// | `host_down_for` | `60s` | how long a host of the pool that could not be reached is left out |
///
/// With `hosts`, the executor is a pool: `hostname` (if set) and the `hosts`, each task placed on
/// the live host running the fewest of this process's tasks (up to `slots_per_host`; the others
/// wait). A host that cannot be reached before the task starts is left out for
/// `host_down_for` and the task goes to another; when none can be reached the task fails with
/// what each host said. A started task stays with its host (its job handle names it).
///
/// With `reuse_workers`, a task costs a request and a reply on an open channel instead of a
/// remote process start (about 1 ms on a LAN instead of tens). The trade-off, as for the
/// `process` executor's reusable workers: statics and leaked state survive from one task to the
/// next in a worker; `pre_launch` runs once per worker and `post_launch` not at all; and a
/// task does not outlive its dispatcher (its worker stops when the session closes, and a
/// resume runs it again) where a task of its own keeps running and is followed.
///
/// plus the [`BaseOptions`]. The first nine are the [`SshOptions`] (field `ssh`), the names
/// the `slurm` executor's `ssh` table uses too.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SshExecutor {
    /// Base options.
    #[serde(flatten)]
    pub base: BaseOptions,
    /// How to reach the host (`hostname`, `username`, `port`, `ssh_key_file`, ...).
    #[serde(flatten)]
    pub ssh: SshOptions,
    /// Binary cache directory on the host.
    pub remote_cache: String,
    /// Work directory on the host.
    pub remote_workdir: String,
    /// One work directory per task.
    pub create_unique_workdir: bool,
    /// Remove the work directory afterwards.
    pub do_cleanup: bool,
    /// Seconds between polls.
    pub poll_freq: f64,
    /// Tries per remote step on connection failure.
    pub max_connection_attempts: u32,
    /// Seconds between tries.
    pub retry_wait_time: f64,
    /// Seconds per remote step (not the task).
    pub command_timeout: f64,
    /// Environment variables for the task.
    pub env: BTreeMap<String, String>,
    /// Commands run before the task.
    pub pre_launch: Vec<String>,
    /// Commands run after the task.
    pub post_launch: Vec<String>,
    /// A binary already on the host.
    pub remote_binary: Option<String>,
    /// Run tasks on persistent workers (one SSH session each) instead of a remote process
    /// per task.
    pub reuse_workers: bool,
    /// Persistent workers per host at most (default: `max_sessions` − 2).
    pub max_workers: Option<u32>,
    /// More hosts (`host`, `user@host`, `host:port`, `user@host:port`), sharing the other
    /// options: tasks go to the least loaded live one.
    pub hosts: Vec<String>,
    /// Tasks at once per host of a pool (default: `max_workers` with persistent workers, else
    /// `max_sessions` − 2).
    pub slots_per_host: Option<u32>,
    /// How long a host of a pool that could not be reached is left out.
    #[serde(with = "covalent::executor::serde_duration")]
    pub host_down_for: Duration,
}

impl Default for SshExecutor {
    fn default() -> Self {
        SshExecutor {
            base: BaseOptions::default(),
            ssh: SshOptions::default(),
            remote_cache: ".cache/covalent".into(),
            remote_workdir: "covalent-workdir".into(),
            create_unique_workdir: true,
            do_cleanup: true,
            poll_freq: 0.5,
            max_connection_attempts: 3,
            retry_wait_time: 2.0,
            command_timeout: 120.0,
            env: BTreeMap::new(),
            pre_launch: Vec::new(),
            post_launch: Vec::new(),
            remote_binary: None,
            reuse_workers: false,
            max_workers: None,
            hosts: Vec::new(),
            slots_per_host: None,
            host_down_for: Duration::from_secs(60),
        }
    }
}

impl SshExecutor {
    /// An executor for `hostname` with default options.
    pub fn new(hostname: impl Into<String>) -> Self {
        SshExecutor {
            ssh: SshOptions::new(hostname),
            ..Default::default()
        }
    }
    /// Sets the remote user.
    pub fn with_username(mut self, user: impl Into<String>) -> Self {
        self.ssh.username = Some(user.into());
        self
    }
    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.ssh.port = Some(port);
        self
    }
    /// Sets the private key file.
    pub fn with_key_file(mut self, key: impl Into<PathBuf>) -> Self {
        self.ssh.ssh_key_file = Some(key.into());
        self
    }
    /// Sets the known-hosts file.
    pub fn with_known_hosts(mut self, file: impl Into<PathBuf>) -> Self {
        self.ssh.known_hosts = Some(file.into());
        self
    }
    /// Sets an ssh config file.
    pub fn with_ssh_config(mut self, file: impl Into<PathBuf>) -> Self {
        self.ssh.ssh_config = Some(file.into());
        self
    }

    /// Adds a `-o` option for ssh (e.g. `"ProxyJump=bastion"`).
    pub fn with_ssh_option(mut self, option: impl Into<String>) -> Self {
        self.ssh.options.push(option.into());
        self
    }

    /// Runs a task's envelope on this executor's one host.
    pub(crate) async fn on_host(
        &self,
        envelope: &covalent::executor::worker::TaskEnvelope,
        ctx: &TaskContext,
    ) -> Result<Output, remote::Failure> {
        if self.reuse_workers {
            workers::run(self, envelope, ctx).await
        } else {
            remote::run(self, envelope, ctx).await
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s.max(0.0))
    }
}

#[covalent::executor::async_trait]
impl Executor for SshExecutor {
    fn short_name(&self) -> &str {
        "ssh"
    }

    fn base(&self) -> &BaseOptions {
        &self.base
    }

    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        if self.ssh.hostname.is_empty() && self.hosts.is_empty() {
            return Err(ExecutorError::Failed(
                "the ssh executor needs a hostname: set `hostname` (or `hosts`) in [executors.ssh] or use SshExecutor::new(host)".into(),
            ));
        }
        let envelope = self.envelope(&task, ctx)?;
        if self.hosts.is_empty() {
            return self
                .on_host(&envelope, ctx)
                .await
                .map_err(remote::Failure::into_error);
        }
        pools::run(self, &envelope, ctx).await
    }

    async fn cancel(
        &self,
        _ctx: &TaskContext,
        job: Option<&JobHandle>,
    ) -> Result<bool, ExecutorError> {
        let Some(job) = job else { return Ok(false) };
        let ex = self.at_handle(&job.0);
        if workers::is_worker_handle(&job.0) {
            return workers::kill(&ex, &job.0).await;
        }
        remote::cancel(&ex, &job.0)
            .await
            .map_err(ExecutorError::from)
    }

    async fn probe(&self, job: &JobHandle) -> Result<Probe, ExecutorError> {
        let ex = self.at_handle(&job.0);
        if workers::is_worker_handle(&job.0) {
            // Its answer was to come down the session of a dispatcher that is gone: its worker
            // is stopped (never left running beside a new attempt) and the task runs again.
            workers::kill(&ex, &job.0).await?;
            return Ok(Probe::Gone);
        }
        remote::probe(&ex, &job.0).await
    }

    async fn reattach(&self, job: &JobHandle, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        remote::reattach(&self.at_handle(&job.0), &job.0, ctx).await
    }
}

covalent::register_executor!("ssh", SshExecutor);

/// Links this crate so its `ssh` plugin is registered (call once, e.g. at the top of `main`;
/// a `use covalent_ssh::SshExecutor` that is used has the same effect).
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_with_the_shared_names_and_round_trip() {
        let e: SshExecutor = covalent::executor::from_dict(serde_json::json!({
            "hostname": "gpu-box", "username": "me", "port": 2222,
            "ssh_key_file": "~/.ssh/id_ed25519", "connect_timeout": 5,
            "options": ["ProxyJump=bastion"], "remote_cache": "/opt/cache",
            "time_limit": "5m",
        }))
        .unwrap();
        assert_eq!(e.ssh.label(), "me@gpu-box:2222");
        assert_eq!(e.ssh.connect_timeout, Duration::from_secs(5));
        assert_eq!(e.ssh.options, ["ProxyJump=bastion"]);
        assert_eq!(e.remote_cache, "/opt/cache");
        assert!(e.ssh.strict_host_key_checking, "strict by default");
        let again: SshExecutor =
            covalent::executor::from_dict(covalent::executor::ToDict::to_dict(&e)).unwrap();
        assert_eq!(again.ssh, e.ssh);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        // `host` is an alias in the slurm executor's `ssh` table only: this executor's table
        // always had `hostname`.
        for bad in ["hostnme", "host"] {
            let err = covalent::executor::from_dict::<SshExecutor>(serde_json::json!({ bad: "x" }))
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains(&format!("unknown key `{bad}`")) && err.contains("hostname"),
                "{err}"
            );
        }
    }
}

#[cfg(test)]
covalent_test_support::isolated_home!();
