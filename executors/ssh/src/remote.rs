//! The remote side: building `ssh` invocations (shared connections, timeouts, retries on
//! connection loss), shipping the binary, running a task and cancelling it.
//!
//! Every remote step has a timeout; only connection failures are retried; an unknown host
//! key, a refused key and a missing binary are reported at once with what to fix.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use covalent::worker::{
    RESULT_ENV, ResultEnvelope, TASK_ENV, TaskEnvelope, binary_hash, current_binary, shell_quote,
    tail,
};
use covalent::{ExecutorError, Output, Task, TaskContext};
use tokio::io::AsyncWriteExt;

use crate::SshExecutor;

/// Why a remote step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SshError {
    /// The host could not be reached (after every attempt).
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// user@host:port.
        target: String,
        /// ssh's message.
        reason: String,
    },
    /// The host key is unknown or changed.
    #[error(
        "the host key of {target} is not known or has changed, and strict host-key checking is on: \
         add it to your known_hosts (e.g. `ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`) or set `known_hosts` \
         to a file that has it ({reason})"
    )]
    HostKey {
        /// user@host:port.
        target: String,
        /// ssh's message.
        reason: String,
    },
    /// Authentication failed.
    #[error("{target} refused the login ({reason}): check `username` and `ssh_key_file`")]
    Auth {
        /// user@host:port.
        target: String,
        /// ssh's message.
        reason: String,
    },
    /// A remote step did not finish in time.
    #[error("`{step}` on {target} did not finish within {secs:.0}s (command_timeout)")]
    Timeout {
        /// user@host:port.
        target: String,
        /// What was running.
        step: String,
        /// The limit.
        secs: f64,
    },
    /// A remote command failed.
    #[error("{step} failed on {target}: {reason}")]
    Remote {
        /// user@host:port.
        target: String,
        /// What was running.
        step: String,
        /// stderr and exit status.
        reason: String,
    },
    /// Something local failed (spawning ssh, reading the binary).
    #[error("{0}")]
    Local(String),
}

impl From<SshError> for ExecutorError {
    fn from(e: SshError) -> Self {
        ExecutorError::Failed(e.to_string())
    }
}

/// What one `ssh` invocation produced.
struct Reply {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The directory of shared-connection sockets (short, per process: socket paths are limited).
fn control_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("cvssh-{}", std::process::id())))
}

impl SshExecutor {
    fn target(&self) -> String {
        let user = self
            .username
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{user}{}{port}", self.hostname)
    }

    /// Shared connections are kept apart per authentication setup: a connection opened with one
    /// key or known-hosts file must not serve an executor configured with another.
    fn control_subdir(&self) -> PathBuf {
        let setup = format!(
            "{:?}|{:?}|{:?}|{}",
            self.ssh_key_file, self.known_hosts, self.ssh_config, self.strict_host_key_checking
        );
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in setup.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let dir = control_dir().join(format!("{:08x}", h as u32));
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    fn command(&self, remote: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        if let Some(f) = &self.ssh_config {
            c.arg("-F").arg(f);
        }
        let strict = if self.strict_host_key_checking {
            "yes"
        } else {
            "accept-new"
        };
        c.args(["-o", "BatchMode=yes"])
            .args([
                "-o",
                &format!("ConnectTimeout={}", self.connect_timeout.max(1)),
            ])
            .args(["-o", &format!("StrictHostKeyChecking={strict}")])
            .args(["-o", "ControlMaster=auto"])
            .arg("-o")
            .arg(format!(
                "ControlPath={}/%C",
                self.control_subdir().display()
            ))
            .args(["-o", "ControlPersist=60"])
            .args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"])
            .args(["-o", "LogLevel=ERROR"]);
        if let Some(k) = &self.ssh_key_file {
            c.arg("-i").arg(k).args(["-o", "IdentitiesOnly=yes"]);
        }
        if let Some(k) = &self.known_hosts {
            c.arg("-o")
                .arg(format!("UserKnownHostsFile={}", k.display()));
        }
        if let Some(p) = self.port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &self.username {
            c.arg("-l").arg(u);
        }
        c.arg(&self.hostname).arg("--").arg(remote);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// One invocation, no retries; `timeout` bounds it.
    async fn once(
        &self,
        remote: &str,
        input: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Reply, SshError> {
        let mut child = self.command(remote).spawn().map_err(|e| {
            SshError::Local(format!(
                "cannot run `ssh` (is OpenSSH's client installed?): {e}"
            ))
        })?;
        let mut stdin = child.stdin.take();
        let input = input.to_vec();
        let feed = async move {
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(&input).await;
                let _ = s.shutdown().await;
            }
            drop(stdin);
        };
        let work = async {
            let (_, out) = tokio::join!(feed, child.wait_with_output());
            out
        };
        let out = match timeout {
            Some(t) => tokio::time::timeout(t, work)
                .await
                .map_err(|_| SshError::Timeout {
                    target: self.target(),
                    step: first_line(remote),
                    secs: t.as_secs_f64(),
                })?,
            None => work.await,
        }
        .map_err(|e| SshError::Local(format!("ssh: {e}")))?;
        Ok(Reply {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Classifies ssh's own failures (exit 255): connection problems are retryable.
    fn classify(&self, r: &Reply) -> Option<(SshError, bool)> {
        if r.code != Some(255) {
            return None;
        }
        let msg = r.stderr.trim().to_string();
        let target = self.target();
        let lower = msg.to_lowercase();
        Some(
            if lower.contains("host key verification failed")
                || lower.contains("no ") && lower.contains("host key is known")
                || lower.contains("remote host identification has changed")
            {
                (
                    SshError::HostKey {
                        target,
                        reason: msg,
                    },
                    false,
                )
            } else if lower.contains("permission denied")
                || lower.contains("too many authentication failures")
            {
                (
                    SshError::Auth {
                        target,
                        reason: msg,
                    },
                    false,
                )
            } else {
                let reason = if msg.is_empty() {
                    "the connection failed".to_string()
                } else {
                    msg
                };
                (SshError::Connect { target, reason }, true)
            },
        )
    }

    /// Runs a remote command, retrying connection failures; a non-zero exit of the command
    /// itself is returned as is.
    async fn call(
        &self,
        remote: &str,
        input: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Reply, SshError> {
        let attempts = self.max_connection_attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            let r = self.once(remote, input, timeout).await?;
            match self.classify(&r) {
                None => return Ok(r),
                Some((e, retry)) if retry && attempt < attempts => {
                    last = Some(e);
                    tokio::time::sleep(Self::secs(self.retry_wait_time)).await;
                }
                Some((e, _)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| SshError::Local("no attempt made".into())))
    }

    fn step_timeout(&self) -> Option<Duration> {
        Some(Self::secs(self.command_timeout))
    }

    /// The binary on the host, shipped once per content hash.
    async fn ensure_binary(&self) -> Result<String, SshError> {
        if let Some(b) = &self.remote_binary {
            return Ok(b.clone());
        }
        let hash = binary_hash()
            .map_err(|e| SshError::Local(format!("cannot hash this program's binary: {e}")))?;
        let path = format!(
            "{}/covalent-worker-{hash}",
            self.remote_cache.trim_end_matches('/')
        );
        let key = format!("{}|{path}", self.target());
        if self.state.shipped.lock().unwrap().contains(&key) {
            return Ok(path);
        }
        let q = shell_quote(&path);
        let probe = self
            .call(
                &format!("test -x {q} && echo present"),
                b"",
                self.step_timeout(),
            )
            .await?;
        if !probe.stdout.contains("present") {
            let bin = current_binary()
                .map_err(|e| SshError::Local(format!("cannot find this program's binary: {e}")))?;
            let bytes = std::fs::read(&bin)
                .map_err(|e| SshError::Local(format!("cannot read {}: {e}", bin.display())))?;
            let dir = shell_quote(&self.remote_cache);
            let upload = format!(
                "mkdir -p {dir} && cat > {q}.part.$$ && chmod 755 {q}.part.$$ && mv -f {q}.part.$$ {q}"
            );
            let r = self.call(&upload, &bytes, self.step_timeout()).await?;
            if r.code != Some(0) {
                return Err(SshError::Remote {
                    target: self.target(),
                    step: format!("copying the binary to {path}"),
                    reason: r.stderr.trim().to_string(),
                });
            }
        }
        self.state.shipped.lock().unwrap().insert(key);
        Ok(path)
    }

    fn workdir(&self, ctx: &TaskContext) -> String {
        let base = self.remote_workdir.trim_end_matches('/');
        if self.create_unique_workdir {
            format!(
                "{base}/{}/{}-{}",
                ctx.dispatch_id(),
                ctx.node_id(),
                ctx.attempt()
            )
        } else {
            base.to_string()
        }
    }
}

fn first_line(s: &str) -> String {
    s.trim()
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(80)
        .collect()
}

/// The remote script: write the envelope, start the worker in its own session, report its
/// pid, wait for it, print the result and the streams, run `post_launch`, clean up.
fn task_script(ex: &SshExecutor, wd: &str, bin: &str) -> String {
    let wdq = shell_quote(wd);
    let mut s = String::from("set -e\n");
    // Relative paths are relative to the login directory, where the session starts.
    s += &format!(
        "bin={}\ncase \"$bin\" in /*) ;; *) bin=\"$PWD/$bin\" ;; esac\n",
        shell_quote(bin)
    );
    s += &format!("mkdir -p {wdq} && cd {wdq}\ncat > task.json\nrm -f result.json exitcode\n");
    for cmd in &ex.pre_launch {
        s += &format!("{cmd} >&2\n");
    }
    for (k, v) in &ex.env {
        s += &format!("export {}={}\n", shell_quote(k), shell_quote(v));
    }
    s += &format!(
        "setsid sh -c '{TASK_ENV}=\"$PWD/task.json\" {RESULT_ENV}=\"$PWD/result.json\" \"$0\" >stdout 2>stderr </dev/null; echo $? > exitcode' \"$bin\" &\n"
    );
    s += "echo \"covalent-pid $!\"\nwait $! 2>/dev/null || true\nset +e\n";
    s += &collect_script();
    for cmd in &ex.post_launch {
        s += &format!("{cmd} >&2\n");
    }
    if ex.do_cleanup && ex.create_unique_workdir {
        s += &format!("cd / && rm -rf {wdq}\n");
    }
    s
}

/// Prints what a finished task left in the current directory.
fn collect_script() -> String {
    "echo \"covalent-exit $(cat exitcode 2>/dev/null || echo none)\"\n\
     echo covalent-result; cat result.json 2>/dev/null; echo\n\
     echo covalent-stdout; base64 -w0 stdout 2>/dev/null; echo\n\
     echo covalent-stderr; base64 -w0 stderr 2>/dev/null; echo\n"
        .to_string()
}

/// What the collect script printed.
#[derive(Default)]
struct Collected {
    pid: Option<i64>,
    exit: Option<String>,
    result: Option<String>,
    stdout: String,
    stderr: String,
}

fn parse(out: &str) -> Collected {
    let mut c = Collected::default();
    let mut lines = out.lines();
    let b64 = |s: Option<&str>| {
        base64::engine::general_purpose::STANDARD
            .decode(s.unwrap_or("").trim())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    while let Some(l) = lines.next() {
        if let Some(p) = l.strip_prefix("covalent-pid ") {
            c.pid = p.trim().parse().ok();
        } else if let Some(e) = l.strip_prefix("covalent-exit ") {
            c.exit = Some(e.trim().to_string());
        } else if l == "covalent-result" {
            c.result = lines
                .next()
                .map(str::to_string)
                .filter(|s| !s.trim().is_empty());
        } else if l == "covalent-stdout" {
            c.stdout = b64(lines.next());
        } else if l == "covalent-stderr" {
            c.stderr = b64(lines.next());
        }
    }
    c
}

/// Turns what a finished task left into the node's output.
fn finish(ex: &SshExecutor, ctx: &TaskContext, c: Collected) -> Result<Output, ExecutorError> {
    ctx.record_streams(c.stdout.clone(), c.stderr.clone());
    match c.result {
        Some(r) => ResultEnvelope::parse(r.as_bytes())?.into_output(),
        None => {
            let status = match c.exit.as_deref() {
                Some("none") | None => "ended without reporting an exit status".to_string(),
                Some(code) => match code.parse::<i32>() {
                    Ok(n) if n > 128 => {
                        format!("was killed by {}", covalent::worker::signal_name(n - 128))
                    }
                    Ok(126) => {
                        "could not be executed (exit 126: wrong architecture or permissions?)"
                            .to_string()
                    }
                    Ok(127) => "was not found (exit 127)".to_string(),
                    Ok(n) => format!("exited with code {n}"),
                    Err(_) => format!("ended ({code})"),
                },
            };
            let mut msg = format!("the task's process on {} {status}", ex.target());
            let t = tail(&c.stderr, 20);
            if !t.is_empty() {
                msg.push_str(":\n");
                msg.push_str(&t);
            }
            Err(ExecutorError::Failed(msg))
        }
    }
}

/// Starts the task script and follows its output: the job handle is recorded as soon as the
/// remote pid is printed (so a time-out or cancel can kill the task while the session waits).
/// Connection failures before the start are retried.
async fn launch(
    ex: &SshExecutor,
    script: &str,
    envelope: &[u8],
    ctx: &TaskContext,
    wd: &str,
) -> Result<(Collected, Reply), SshError> {
    use tokio::io::AsyncBufReadExt;
    let attempts = ex.max_connection_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut child = ex.command(script).spawn().map_err(|e| {
            SshError::Local(format!(
                "cannot run `ssh` (is OpenSSH's client installed?): {e}"
            ))
        })?;
        let mut stdin = child.stdin.take();
        let input = envelope.to_vec();
        let feed = async move {
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(&input).await;
                let _ = s.shutdown().await;
            }
            drop(stdin);
        };
        let stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut out = String::new();
        let mut pid = None;
        let read_out = async {
            if let Some(so) = stdout {
                let mut lines = tokio::io::BufReader::new(so).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if pid.is_none()
                        && let Some(p) = l.strip_prefix("covalent-pid ")
                    {
                        pid = p.trim().parse::<i64>().ok();
                        ctx.set_job_handle(serde_json::json!({
                            "host": ex.target(), "pid": pid, "workdir": wd,
                        }));
                    }
                    out.push_str(&l);
                    out.push('\n');
                }
            }
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(se) = stderr.as_mut() {
                let _ = tokio::io::AsyncReadExt::read_to_end(se, &mut buf).await;
            }
            String::from_utf8_lossy(&buf).into_owned()
        };
        let (_, _, err, status) = tokio::join!(feed, read_out, read_err, child.wait());
        let reply = Reply {
            code: status.ok().and_then(|s| s.code()),
            stdout: out,
            stderr: err,
        };
        let c = parse(&reply.stdout);
        if c.pid.is_none()
            && let Some((e, retry)) = ex.classify(&reply)
        {
            if retry && attempt < attempts {
                tokio::time::sleep(SshExecutor::secs(ex.retry_wait_time)).await;
                continue;
            }
            return Err(e);
        }
        return Ok((c, reply));
    }
}

pub(crate) async fn run(
    ex: &SshExecutor,
    task: Task,
    ctx: &TaskContext,
) -> Result<Output, ExecutorError> {
    let bin = ex.ensure_binary().await?;
    let wd = ex.workdir(ctx);
    let envelope = TaskEnvelope::of(&task, ctx).to_json();
    let script = task_script(ex, &wd, &bin);
    // The waiting session has no time limit of its own: the runtime's time_limit applies.
    let (c, reply) = launch(ex, &script, envelope.as_bytes(), ctx, &wd).await?;
    if c.exit.is_some() {
        return finish(ex, ctx, c);
    }
    if c.pid.is_none() {
        return Err(SshError::Remote {
            target: ex.target(),
            step: "starting the task".into(),
            reason: format!("{} (exit {:?})", tail(reply.stderr.trim(), 20), reply.code),
        }
        .into());
    }
    // The waiting session was lost after the start: poll until the task ends.
    let wdq = shell_quote(&wd);
    let poll = format!("cd {wdq} && test -e exitcode && {{\n{}}}", collect_script());
    loop {
        tokio::time::sleep(SshExecutor::secs(ex.poll_freq)).await;
        let r = ex.call(&poll, b"", ex.step_timeout()).await?;
        let c2 = parse(&r.stdout);
        if c2.exit.is_some() {
            if ex.do_cleanup && ex.create_unique_workdir {
                let _ = ex
                    .call(&format!("rm -rf {wdq}"), b"", ex.step_timeout())
                    .await;
            }
            return finish(ex, ctx, Collected { pid: c.pid, ..c2 });
        }
    }
}

pub(crate) async fn cancel(ex: &SshExecutor, job: &serde_json::Value) -> Result<bool, SshError> {
    let Some(pid) = job.get("pid").and_then(|p| p.as_i64()).filter(|p| *p > 1) else {
        return Ok(false);
    };
    // `kill -9 -PGID` (no `--`: dash's kill takes none) ends the task's whole process group.
    let mut cmd = format!("kill -9 -{pid} 2>/dev/null; kill -9 {pid} 2>/dev/null; true");
    if let Some(wd) = job.get("workdir").and_then(|w| w.as_str())
        && ex.do_cleanup
        && ex.create_unique_workdir
    {
        cmd.push_str(&format!("; rm -rf {}", shell_quote(wd)));
    }
    ex.call(&cmd, b"", ex.step_timeout()).await.map(|_| true)
}
