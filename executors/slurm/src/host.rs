//! Where Slurm commands run: this host (`sh -c`) or a login node through the system `ssh`
//! (the user's OpenSSH config, keys, agent and known hosts; one shared connection per login
//! node through `ControlMaster`, so a command costs a round trip, not a handshake).
//!
//! Every command has a time limit and is killed when it passes it or when its caller is
//! dropped. This module runs commands and moves files; what the commands are is `lib.rs`'s.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use covalent::worker::shell_quote;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// How to reach a Slurm login node over SSH (the `ssh` option).
///
/// ```toml
/// [executors.slurm]
/// ssh = { host = "login.cluster.example", user = "me", key = "~/.ssh/id_ed25519" }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshOptions {
    /// Host name, address, or a `Host` alias of your ssh config.
    pub host: String,
    /// Remote user (default: ssh's).
    pub user: Option<String>,
    /// Port (default: ssh's).
    pub port: Option<u16>,
    /// Private key file (`-i`, with `IdentitiesOnly=yes`); `~/` is expanded.
    pub key: Option<PathBuf>,
    /// An ssh config file (`-F`); `~/` is expanded.
    pub ssh_config: Option<PathBuf>,
    /// A known-hosts file (`UserKnownHostsFile`); `~/` is expanded.
    pub known_hosts: Option<PathBuf>,
    /// Refuse unknown or changed host keys (`StrictHostKeyChecking=yes`, the default); `false`
    /// accepts the key of a host seen for the first time and still refuses changed ones
    /// (`accept-new`).
    pub strict_host_key_checking: bool,
    /// Time to establish a connection.
    #[serde(with = "covalent::serde_duration")]
    pub connect_timeout: Duration,
    /// Extra `-o` options, e.g. `"ProxyJump=bastion"`.
    pub options: Vec<String>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            host: String::new(),
            user: None,
            port: None,
            key: None,
            ssh_config: None,
            known_hosts: None,
            strict_host_key_checking: true,
            connect_timeout: Duration::from_secs(10),
            options: Vec::new(),
        }
    }
}

impl SshOptions {
    /// `user@host:port`, for messages.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.user {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s
    }
}

fn options_hash(o: &SshOptions) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(o).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn expand_home(p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => dirs_home()
            .map(|h| h.join(rest))
            .unwrap_or_else(|| p.to_path_buf()),
        Err(_) => p.to_path_buf(),
    }
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// What a command gave back.
#[derive(Debug)]
pub(crate) struct Out {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Why a command could not be run to its end.
#[derive(Debug)]
pub(crate) enum HostError {
    /// `sh` or `ssh` could not start.
    Spawn(String),
    /// It ran past its time limit (and was killed).
    TimedOut(Duration),
    /// ssh could not reach or log in to the login node (its exit status 255).
    Ssh(String),
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::Spawn(m) | HostError::Ssh(m) => f.write_str(m),
            HostError::TimedOut(d) => write!(
                f,
                "no answer within {} (command_timeout)",
                humantime::format_duration(*d)
            ),
        }
    }
}

/// A command's standard input.
pub(crate) enum Input {
    None,
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// This host, or a login node over SSH.
#[derive(Clone, Debug)]
pub(crate) struct Host {
    ssh: Option<Arc<SshCommand>>,
}

#[derive(Debug)]
struct SshCommand {
    args: Vec<String>,
    label: String,
}

impl Host {
    /// This host.
    pub fn local() -> Host {
        Host { ssh: None }
    }

    /// A login node; `control_dir` holds the shared connection's socket.
    pub fn ssh(o: &SshOptions, control_dir: &Path) -> Result<Host, String> {
        if o.host.is_empty() {
            return Err("ssh.host is empty: name the Slurm login node".into());
        }
        let mut args: Vec<String> = vec!["-T".into()];
        let mut opt = |s: String| {
            args.push("-o".into());
            args.push(s);
        };
        opt("BatchMode=yes".into());
        opt(format!(
            "ConnectTimeout={}",
            o.connect_timeout.as_secs().max(1)
        ));
        opt("ServerAliveInterval=15".into());
        opt("ServerAliveCountMax=3".into());
        opt(format!(
            "StrictHostKeyChecking={}",
            if o.strict_host_key_checking {
                "yes"
            } else {
                "accept-new"
            }
        ));
        opt("ControlMaster=auto".into());
        // One shared connection per distinct set of options (another key or known-hosts
        // file must not ride on a connection that was authenticated differently).
        opt(format!(
            "ControlPath={}/{:016x}-%C",
            control_dir.display(),
            options_hash(o)
        ));
        opt("ControlPersist=120".into());
        if let Some(k) = &o.known_hosts {
            opt(format!("UserKnownHostsFile={}", expand_home(k).display()));
        }
        if o.key.is_some() {
            opt("IdentitiesOnly=yes".into());
        }
        for extra in &o.options {
            opt(extra.clone());
        }
        if let Some(k) = &o.key {
            args.push("-i".into());
            args.push(expand_home(k).display().to_string());
        }
        if let Some(f) = &o.ssh_config {
            args.push("-F".into());
            args.push(expand_home(f).display().to_string());
        }
        if let Some(p) = o.port {
            args.push("-p".into());
            args.push(p.to_string());
        }
        if let Some(u) = &o.user {
            args.push("-l".into());
            args.push(u.clone());
        }
        args.push("--".into());
        args.push(o.host.clone());
        Ok(Host {
            ssh: Some(Arc::new(SshCommand {
                args,
                label: o.label(),
            })),
        })
    }

    /// Whether commands go through ssh.
    pub fn is_remote(&self) -> bool {
        self.ssh.is_some()
    }

    /// The login node's `user@host:port`, or `this host`.
    pub fn label(&self) -> String {
        match &self.ssh {
            Some(s) => s.label.clone(),
            None => "this host".into(),
        }
    }

    /// The program and arguments that run `script` there.
    fn argv(&self, script: &str) -> (&'static str, Vec<String>) {
        match &self.ssh {
            None => ("sh", vec!["-c".into(), script.into()]),
            Some(s) => {
                let mut args = s.args.clone();
                // The login shell may be csh-like: hand the script to sh as one word.
                args.push(format!("sh -c {}", shell_quote(script)));
                ("ssh", args)
            }
        }
    }

    fn command(&self, script: &str) -> tokio::process::Command {
        let (program, args) = self.argv(script);
        let mut c = tokio::process::Command::new(program);
        c.args(args);
        c
    }

    /// Runs a POSIX shell script there, killed after `timeout`.
    pub async fn sh(
        &self,
        script: &str,
        input: Input,
        timeout: Duration,
    ) -> Result<Out, HostError> {
        let mut cmd = self.command(script);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut bytes = None;
        match input {
            Input::None => {
                cmd.stdin(Stdio::null());
            }
            Input::Bytes(b) => {
                cmd.stdin(Stdio::piped());
                bytes = Some(b);
            }
            Input::File(p) => {
                let f = std::fs::File::open(&p)
                    .map_err(|e| HostError::Spawn(format!("cannot read {}: {e}", p.display())))?;
                cmd.stdin(Stdio::from(f));
            }
        }
        let what = if self.is_remote() { "ssh" } else { "sh" };
        let mut child = cmd
            .spawn()
            .map_err(|e| HostError::Spawn(format!("cannot start {what}: {e}")))?;
        let stdin = child.stdin.take();
        let run = async move {
            let feed = async move {
                if let (Some(mut w), Some(b)) = (stdin, bytes) {
                    // A command that exits early closes the pipe: its status tells why.
                    let _ = w.write_all(&b).await;
                    let _ = w.shutdown().await;
                }
            };
            let (_, out) = tokio::join!(feed, child.wait_with_output());
            out
        };
        let out = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(HostError::Spawn(format!("{what} failed: {e}"))),
            Err(_) => return Err(HostError::TimedOut(timeout)),
        };
        let out = Out {
            status: out.status,
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
        };
        if self.is_remote() && out.code() == Some(255) {
            return Err(HostError::Ssh(self.describe_ssh_failure(&out.stderr)));
        }
        Ok(out)
    }

    fn describe_ssh_failure(&self, stderr: &str) -> String {
        let label = self.label();
        let hint = if stderr.contains("Host key verification failed")
            || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        {
            "; its host key is unknown or changed: add it to known_hosts (ssh-keyscan, after checking it) or name the right file with ssh.known_hosts"
        } else if stderr.contains("Permission denied") {
            "; the login was refused: check ssh.user and ssh.key"
        } else {
            ""
        };
        format!("cannot reach the Slurm login node {label}: {stderr}{hint}")
    }

    /// Starts a command and forgets it (reaped by a thread): for clean-up from `Drop`.
    pub fn fire_and_forget(&self, script: &str) {
        let (program, args) = self.argv(script);
        let mut cmd = std::process::Command::new(program);
        cmd.args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Ok(mut child) = cmd.spawn() {
            std::thread::spawn(move || child.wait());
        }
    }

    /// Writes `bytes` to `dir/name` there, creating `dir`.
    pub async fn put(
        &self,
        dir: &str,
        name: &str,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), String> {
        if !self.is_remote() {
            std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(Path::new(dir).join(name), &bytes))
                .map_err(|e| format!("cannot write {dir}/{name}: {e}"))?;
            return Ok(());
        }
        let d = shell_quote(dir);
        let out = self
            .sh(
                &format!("mkdir -p {d} && cat > {d}/{name}"),
                Input::Bytes(bytes),
                timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
        if !out.ok() {
            return Err(format!(
                "cannot write {dir}/{name} on {}: {}",
                self.label(),
                out.stderr
            ));
        }
        Ok(())
    }

    /// Reads `names` from `dir` there (`None` for a file that is not there), then removes
    /// the directory when `remove` is set.
    pub async fn fetch(
        &self,
        dir: &str,
        names: &[&str],
        remove: bool,
        timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        if !self.is_remote() {
            let files = names
                .iter()
                .map(|n| std::fs::read(Path::new(dir).join(n)).ok())
                .collect();
            if remove {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Ok(files);
        }
        // One round trip: per file, its size in bytes (or -1) on a line, then its bytes.
        let list: Vec<String> = names.iter().map(|n| shell_quote(n)).collect();
        let d = shell_quote(dir);
        let mut script = format!(
            "cd {d} 2>/dev/null || exit 0; for f in {}; do if [ -f \"$f\" ]; then wc -c < \"$f\"; cat \"$f\"; else echo -1; fi; done",
            list.join(" ")
        );
        if remove {
            script.push_str(&format!("; cd && rm -rf {d}"));
        }
        let out = self
            .sh(&script, Input::None, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let mut rest: &[u8] = &out.stdout;
        let mut files = Vec::with_capacity(names.len());
        for _ in names {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                files.push(None);
                continue;
            };
            let len: i64 = String::from_utf8_lossy(&rest[..nl])
                .trim()
                .parse()
                .unwrap_or(-1);
            rest = &rest[nl + 1..];
            if len < 0 {
                files.push(None);
                continue;
            }
            let n = (len as usize).min(rest.len());
            files.push(Some(rest[..n].to_vec()));
            rest = &rest[n..];
        }
        Ok(files)
    }

    /// Removes a directory tree there (best effort).
    pub async fn remove(&self, dir: &str, timeout: Duration) {
        if !self.is_remote() {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        let _ = self
            .sh(
                &format!("rm -rf {}", shell_quote(dir)),
                Input::None,
                timeout,
            )
            .await;
    }
}
