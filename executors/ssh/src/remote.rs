//! The task on the host: the remote script (envelope in, worker started detached, result and
//! streams out), following it, polling after a lost session, and cancelling it. The transport
//! (sessions, time limits, retries, staging, error classes) is `covalent-remote`'s.
//!
//! Every remote step has a timeout; only connection failures are retried; an unknown host
//! key, a refused key and a missing binary are reported at once with what to fix.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use covalent::executor::worker::{
    FETCH_MARKER, OutputFile, RESULT_ENV, ResultEnvelope, TASK_ENV, TaskEnvelope, adopt_value_file,
    tail, value_download_path, with_stderr_tail,
};
use covalent::executor::{ExecutorError, Output, Task, TaskContext};

use covalent_remote::{Input, RemoteTaskDir, Reply, Retry, Session, shell_quote};
use tokio::io::AsyncWriteExt;

use crate::{SshError, SshExecutor};

impl SshExecutor {
    /// The session of this executor's target.
    pub(crate) fn session(&self) -> Result<Session, SshError> {
        Session::new(&self.ssh)
    }

    fn retry(&self) -> Retry {
        Retry {
            attempts: self.max_connection_attempts.max(1),
            wait: Self::secs(self.retry_wait_time),
        }
    }

    pub(crate) fn step_timeout(&self) -> Duration {
        Self::secs(self.command_timeout)
    }

    /// Runs a remote step, retrying connection failures; a non-zero exit of the command
    /// itself is returned as is.
    pub(crate) async fn call(&self, s: &Session, script: &str) -> Result<Reply, SshError> {
        s.run_retrying(script, Input::None, self.step_timeout(), self.retry())
            .await
    }

    /// The binary on the host: `remote_binary`, or ours shipped once per content hash.
    pub(crate) async fn ensure_binary(&self, s: &Session) -> Result<String, SshError> {
        match &self.remote_binary {
            Some(b) => Ok(b.clone()),
            None => {
                s.stage_binary(&self.remote_cache, self.step_timeout(), self.retry())
                    .await
            }
        }
    }

    /// The task's envelope; with `remote_binary`, it names this program's build, which the
    /// worker there must be.
    pub(crate) fn envelope(
        &self,
        task: &Task,
        ctx: &TaskContext,
    ) -> Result<TaskEnvelope, ExecutorError> {
        let mut envelope = TaskEnvelope::away(task, ctx, None)?;
        if self.remote_binary.is_some() {
            envelope.build =
                Some(covalent::executor::worker::binary_hash().map_err(ExecutorError::Failed)?);
        }
        Ok(envelope)
    }

    /// The task directory `wd` there, for file transfers.
    pub(crate) fn task_dir<'a>(&self, s: &'a Session, wd: &str) -> RemoteTaskDir<'a> {
        RemoteTaskDir {
            session: s,
            dir: wd.to_string(),
            timeout: self.step_timeout(),
        }
    }

    /// The envelope for this host: files made there are named by it, and the files of this
    /// machine the task needs are sent into `wd` first.
    pub(crate) async fn envelope_for_host(
        &self,
        envelope: &TaskEnvelope,
        s: &Session,
        wd: &str,
        ctx: &TaskContext,
    ) -> Result<TaskEnvelope, ExecutorError> {
        let mut envelope = envelope.clone();
        envelope.files.here = Some(s.options().label());
        envelope.send_files(&self.task_dir(s, wd), ctx).await?;
        Ok(envelope)
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

/// `bin=...`: the worker binary's absolute path there (relative paths are relative to the
/// login directory, where the session starts).
pub(crate) fn binary_line(bin: &str) -> String {
    format!(
        "bin={}\ncase \"$bin\" in /*) ;; *) bin=\"$PWD/$bin\" ;; esac\n",
        shell_quote(bin)
    )
}

/// `pre_launch` (its output to stderr) and `env`, before the worker starts.
pub(crate) fn launch_lines(ex: &SshExecutor) -> String {
    let mut s = String::new();
    for cmd in &ex.pre_launch {
        s += &format!("{cmd} >&2\n");
    }
    for (k, v) in &ex.env {
        s += &format!("export {}={}\n", shell_quote(k), shell_quote(v));
    }
    s
}

/// The remote script: write the envelope, start the worker in its own session, report its
/// pid, wait for it, print the result and the streams, run `post_launch`, clean up.
fn task_script(ex: &SshExecutor, wd: &str, bin: &str) -> String {
    let wdq = shell_quote(wd);
    let mut s = String::from("set -e\n");
    s += &binary_line(bin);
    // The directory is made and entered, or the script ends: nothing may run (and nothing be
    // removed) anywhere else. Tried a few times: the last task of a dispatch removes the
    // dispatch's directory once it is empty, maybe just as this one makes it.
    s += &format!(
        "n=0\nuntil mkdir -p {wdq} 2>/dev/null && cd {wdq}; do\n  n=$((n+1)); [ $n -lt 5 ] || {{ echo \"cannot make the task's work directory {}\" >&2; exit 1; }}\ndone\ncovalent_wd=$PWD\ncat > task.json\nrm -f result.json exitcode\n",
        wd.replace(['"', '$', '`', '\\'], "_")
    );
    s += &launch_lines(ex);
    s += &format!(
        "setsid sh -c '{TASK_ENV}=\"$PWD/task.json\" {RESULT_ENV}=\"$PWD/result.json\" \"$0\" >stdout 2>stderr </dev/null; echo $? > exitcode' \"$bin\" &\n"
    );
    s += "echo $! > pid\necho \"covalent-pid $!\"\nwait $! 2>/dev/null || true\nset +e\n";
    s += &collect_script();
    for cmd in &ex.post_launch {
        s += &format!("{cmd} >&2\n");
    }
    if ex.do_cleanup && ex.create_unique_workdir {
        // Unless the output is in a file of its own: the dispatcher fetches it, then removes
        // the directory.
        // `$covalent_wd` is absolute (the task's directory may be relative to the login
        // home); the dispatch's directory above it goes too once it is empty.
        // Removed only if it is the task's directory (its path ends with the work directory
        // asked for): a script that ended up elsewhere removes nothing.
        let rel = wd.trim_start_matches("./").trim_end_matches('/');
        let pattern = if rel.starts_with('/') {
            shell_quote(rel)
        } else {
            format!("*/{}", shell_quote(rel))
        };
        s += &format!(
            "{{ ls value-*.json || test -e {FETCH_MARKER}; }} >/dev/null 2>&1 || case \"$covalent_wd\" in {pattern}) cd / && rm -rf \"$covalent_wd\"; rmdir \"${{covalent_wd%/*}}\" 2>/dev/null ;; esac; true\n"
        );
    }
    s
}

/// Removes a task's work directory (relative paths: to the login home, where a session
/// starts), and the dispatch's directory above it once that is empty.
fn remove_script(wd: &str) -> String {
    let wd = wd.trim_end_matches('/');
    let mut s = format!("rm -rf {}", shell_quote(wd));
    if let Some((parent, _)) = wd.rsplit_once('/')
        && !parent.is_empty()
    {
        s.push_str(&format!(
            "; rmdir {} 2>/dev/null; true",
            shell_quote(parent)
        ));
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
async fn finish(
    ex: &SshExecutor,
    s: &Session,
    ctx: &TaskContext,
    wd: &str,
    c: Collected,
) -> Result<Output, ExecutorError> {
    ctx.record_streams(c.stdout.clone(), c.stderr.clone());
    match c.result {
        Some(r) => {
            let envelope = ResultEnvelope::parse(r.as_bytes())?;
            let received = envelope.receive_files(&ex.task_dir(s, wd), ctx).await;
            match envelope.output_file().cloned() {
                None => {
                    if !envelope.fetch.is_empty() && ex.do_cleanup && ex.create_unique_workdir {
                        // Kept for the files brought home above: gone now.
                        let _ = ex.call(s, &remove_script(wd)).await;
                    }
                    received?;
                    envelope.into_output()
                }
                Some(file) => {
                    let out = fetch_output(ex, s, ctx, wd, &file).await;
                    received?;
                    out
                }
            }
        }
        None => {
            let status = match c.exit.as_deref() {
                Some("none") | None => "ended without reporting an exit status".to_string(),
                Some(code) => match code.parse::<i32>() {
                    Ok(n) if n > 128 => {
                        format!(
                            "was killed by {}",
                            covalent::executor::worker::signal_name(n - 128)
                        )
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
            Err(ExecutorError::WorkerLost(with_stderr_tail(
                format!("the task's process on {} {status}", s.target()),
                &c.stderr,
            )))
        }
    }
}

/// Brings a large output the worker wrote to a file of its own to this side (streamed; at
/// least a second per megabyte on top of the step time limit), checks and adopts it, then
/// removes it there (with the work directory, under `do_cleanup`).
async fn fetch_output(
    ex: &SshExecutor,
    s: &Session,
    ctx: &TaskContext,
    wd: &str,
    file: &OutputFile,
) -> Result<Output, ExecutorError> {
    let path = format!("{}/{}", wd.trim_end_matches('/'), file.name());
    let out = download_output(ex, s, ctx, &path, file).await;
    let clean = if ex.do_cleanup && ex.create_unique_workdir {
        remove_script(wd)
    } else {
        format!("rm -f {}", shell_quote(&path))
    };
    let _ = ex.call(s, &clean).await;
    out
}

/// Brings the output file at `path` there to this side (streamed; at least a second per
/// megabyte on top of the step time limit), checks it and makes it the node's value.
pub(crate) async fn download_output(
    ex: &SshExecutor,
    s: &Session,
    ctx: &TaskContext,
    path: &str,
    file: &OutputFile,
) -> Result<Output, ExecutorError> {
    let tmp = value_download_path(ctx)?;
    let limit = ex.step_timeout() + Duration::from_secs(file.n / 1_000_000);
    match s.download(path, &tmp, limit).await {
        Ok(_) => adopt_value_file(&tmp, file, ctx),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(ExecutorError::Failed(format!(
                "reading back the task's output ({} bytes) from {}: {e}",
                file.n,
                s.target()
            )))
        }
    }
}

/// What the waiting session saw: the collected output, ssh's exit code and stderr.
struct Launched {
    c: Collected,
    code: Option<i32>,
    stderr: String,
}

/// Starts the task script and follows its output: the job handle is recorded as soon as the
/// remote pid is printed (so a time-out or cancel can kill the task while the session waits).
/// Connection failures before the start are retried.
async fn launch(
    ex: &SshExecutor,
    s: &Session,
    script: &str,
    envelope: &[u8],
    ctx: &TaskContext,
    wd: &str,
) -> Result<Launched, SshError> {
    use tokio::io::AsyncBufReadExt;
    let attempts = ex.max_connection_attempts.max(1);
    let mut attempt = 0;
    let mut refused = 0;
    let mut wait = Duration::from_millis(50);
    // The waiting session is a long-lived one: at most `max_sessions` − 2 at once per
    // connection, the other tasks queue here.
    s.ensure_master(ex.step_timeout()).await?;
    let _hold = s.hold().await;
    loop {
        attempt += 1;
        let mut child = s
            .command(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                SshError::Local(format!(
                    "cannot run `ssh` (is OpenSSH's client installed?): {e}"
                ))
            })?;
        let mut stdin = child.stdin.take();
        let input = envelope.to_vec();
        let feed = async move {
            if let Some(w) = stdin.as_mut() {
                let _ = w.write_all(&input).await;
                let _ = w.shutdown().await;
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
                            "host": s.label(), "pid": pid, "workdir": wd,
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
        let done = Launched {
            c: parse(&out),
            code: status.ok().and_then(|st| st.code()),
            stderr: err,
        };
        if done.c.pid.is_none() && s.refused(done.code, &done.stderr) && refused < 8 {
            // The server refused the session (its MaxSessions): a moment, then again.
            refused += 1;
            attempt -= 1;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            continue;
        }
        if done.c.pid.is_none()
            && let Some(e) = s.classify(done.code, &done.stderr)
        {
            if e.is_retryable() && attempt < attempts {
                tokio::time::sleep(SshExecutor::secs(ex.retry_wait_time)).await;
                continue;
            }
            return Err(e);
        }
        return Ok(done);
    }
}

/// Why a task did not run to an end on a host.
pub(crate) enum Failure {
    /// The host could not be reached before the task started: another host may take it.
    Unreachable(SshError),
    /// Anything else: the node's outcome.
    Other(ExecutorError),
}

impl From<ExecutorError> for Failure {
    fn from(e: ExecutorError) -> Self {
        Failure::Other(e)
    }
}

impl Failure {
    /// A failure of a step before the task started.
    pub(crate) fn before_start(e: SshError) -> Failure {
        if e.is_retryable() {
            Failure::Unreachable(e)
        } else {
            Failure::Other(e.into())
        }
    }

    pub(crate) fn into_error(self) -> ExecutorError {
        match self {
            Failure::Unreachable(e) => e.into(),
            Failure::Other(e) => e,
        }
    }
}

pub(crate) async fn run(
    ex: &SshExecutor,
    envelope: &TaskEnvelope,
    ctx: &TaskContext,
) -> Result<Output, Failure> {
    let s = ex.session().map_err(Failure::before_start)?;
    let bin = ex.ensure_binary(&s).await.map_err(Failure::before_start)?;
    let wd = ex.workdir(ctx);
    let envelope = match ex.envelope_for_host(envelope, &s, &wd, ctx).await {
        Ok(e) => e.to_json(),
        Err(e) => {
            // What was staged before the failure goes with the directory.
            let _ = ex.call(&s, &remove_script(&wd)).await;
            return Err(Failure::Other(e));
        }
    };
    let script = task_script(ex, &wd, &bin);
    // Recorded before the launch: a crash before the pid comes back is found by the work
    // directory (its `pid` file).
    ctx.set_job_handle(serde_json::json!({ "host": s.label(), "pid": null, "workdir": wd }));
    // The waiting session has no time limit of its own: the runtime's time_limit applies.
    let Launched { c, code, stderr } = launch(ex, &s, &script, envelope.as_bytes(), ctx, &wd)
        .await
        .map_err(Failure::before_start)?;
    if c.exit.is_some() {
        return Ok(finish(ex, &s, ctx, &wd, c).await?);
    }
    if c.pid.is_none() {
        return Err(Failure::Other(
            SshError::Remote {
                target: s.target().to_string(),
                step: "starting the task".into(),
                reason: format!("{} (exit {code:?})", tail(stderr.trim(), 20)),
            }
            .into(),
        ));
    }
    // The waiting session was lost after the start: poll until the task ends.
    Ok(follow(ex, &s, ctx, &wd, c.pid).await?)
}

/// Polls a started task's work directory until it ends, then collects it (and removes the
/// directory, with `do_cleanup`). A connection lost for good leaves the task recorded by its
/// handle, and the node says where it may still run.
async fn follow(
    ex: &SshExecutor,
    s: &Session,
    ctx: &TaskContext,
    wd: &str,
    pid: Option<i64>,
) -> Result<Output, ExecutorError> {
    let wdq = shell_quote(wd);
    let poll = format!("cd {wdq} && test -e exitcode && {{\n{}}}", collect_script());
    loop {
        tokio::time::sleep(SshExecutor::secs(ex.poll_freq)).await;
        let r = ex.call(s, &poll).await.map_err(|e| lost(s, ctx, wd, e))?;
        let c2 = parse(&r.stdout_text());
        if c2.exit.is_some() {
            let out = finish(ex, s, ctx, wd, Collected { pid, ..c2 }).await;
            if ex.do_cleanup && ex.create_unique_workdir {
                let _ = ex.call(s, &remove_script(wd)).await;
            }
            return out;
        }
    }
}

/// The error of a task the dispatcher lost touch with: final (a retry would run a second copy
/// beside it), and saying how to find it again.
fn lost(s: &Session, ctx: &TaskContext, wd: &str, e: SshError) -> ExecutorError {
    if !e.is_retryable() {
        return e.into();
    }
    let id = ctx.dispatch_id();
    ExecutorError::LostContact(format!(
        "lost the connection to {} while the task ran ({e}); the remote worker may still be running on {} in {wd}: `covalent resume {id}` or `covalent cancel {id}` will find it",
        s.target(),
        s.target()
    ))
}

/// What the task's work directory says: `running` (its process is alive), `finished` (it
/// ended and left a result) or `gone` (anything else).
fn probe_script(wd: &str) -> String {
    let wdq = shell_quote(wd);
    format!(
        "cd {wdq} 2>/dev/null || {{ echo gone; exit 0; }}\n\
         if [ -e exitcode ]; then if [ -s result.json ]; then echo finished; else echo gone; fi\n\
         elif [ -s pid ] && kill -0 \"$(cat pid)\" 2>/dev/null; then echo running\n\
         else echo gone; fi\n"
    )
}

pub(crate) async fn probe(
    ex: &SshExecutor,
    job: &serde_json::Value,
) -> Result<covalent::executor::Probe, ExecutorError> {
    use covalent::executor::Probe;
    let Some(wd) = job.get("workdir").and_then(|w| w.as_str()) else {
        return Ok(Probe::Gone);
    };
    let s = ex.session()?;
    let r = ex.call(&s, &probe_script(wd)).await?;
    Ok(match r.stdout_text().trim() {
        "running" => Probe::Running,
        "finished" => Probe::Finished,
        _ => {
            if ex.do_cleanup && ex.create_unique_workdir {
                let _ = ex.call(&s, &remove_script(wd)).await;
            }
            Probe::Gone
        }
    })
}

pub(crate) async fn reattach(
    ex: &SshExecutor,
    job: &serde_json::Value,
    ctx: &TaskContext,
) -> Result<Output, ExecutorError> {
    let Some(wd) = job.get("workdir").and_then(|w| w.as_str()) else {
        return Err(ExecutorError::Failed(format!(
            "not an ssh job handle: {job}"
        )));
    };
    let s = ex.session()?;
    let pid = job.get("pid").and_then(|p| p.as_i64());
    follow(ex, &s, ctx, wd, pid).await
}

pub(crate) async fn cancel(ex: &SshExecutor, job: &serde_json::Value) -> Result<bool, SshError> {
    let pid = job.get("pid").and_then(|p| p.as_i64()).filter(|p| *p > 1);
    let wd = job.get("workdir").and_then(|w| w.as_str());
    // `kill -9 -PGID` (no `--`: dash's kill takes none) ends the task's whole process group.
    // A handle recorded before the pid came back names the work directory, whose `pid` file
    // has it.
    let mut cmd = match (pid, wd) {
        (Some(pid), _) => format!("kill -9 -{pid} 2>/dev/null; kill -9 {pid} 2>/dev/null; true"),
        (None, Some(wd)) => format!(
            "p=$(cat {}/pid 2>/dev/null) && [ \"$p\" -gt 1 ] && {{ kill -9 -$p 2>/dev/null; kill -9 $p 2>/dev/null; }}; true",
            shell_quote(wd)
        ),
        (None, None) => return Ok(false),
    };
    if let Some(wd) = job.get("workdir").and_then(|w| w.as_str())
        && ex.do_cleanup
        && ex.create_unique_workdir
    {
        cmd.push_str("; ");
        cmd.push_str(&remove_script(wd));
    }
    let s = ex.session()?;
    ex.call(&s, &cmd).await.map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a task script with `sh` in `home` as the login directory, the worker a shell line.
    fn run_in(home: &std::path::Path, wd: &str) -> std::process::Output {
        let ex = SshExecutor::default();
        let bin = home.join("worker.sh");
        std::fs::write(&bin, "#!/bin/sh\necho '{}' > \"$COVALENT_WORKER_RESULT\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::process::Command::new("sh")
            .arg("-c")
            .arg(task_script(&ex, wd, "worker.sh"))
            .current_dir(home)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    #[test]
    fn a_task_removes_its_own_directory_and_nothing_else() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("precious"), "keep").unwrap();
        let out = run_in(home.path(), "covalent-workdir/d1/3-1");
        assert!(out.status.success(), "{out:?}");
        assert!(home.path().join("precious").exists());
        assert!(
            !home.path().join("covalent-workdir/d1").exists(),
            "removed once empty"
        );
        // A directory that cannot be made (a file is in the way): the script stops there,
        // and the login directory keeps everything.
        std::fs::write(home.path().join("blocker"), "a file").unwrap();
        let out = run_in(home.path(), "blocker/d2/1-1");
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot make the task's work directory"),
            "{out:?}"
        );
        for f in ["precious", "blocker", "worker.sh"] {
            assert!(home.path().join(f).exists(), "{f} was removed");
        }
        assert!(
            !home.path().join("task.json").exists(),
            "nothing ran in the home"
        );
    }
}
