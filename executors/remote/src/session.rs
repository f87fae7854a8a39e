//! One SSH target as `ssh` invocations ([`Session`]): running a POSIX shell script there with
//! a time limit (killed on time-out and on drop; through `sh -c` unless the login shell is a
//! POSIX one), reading ssh's own failures, retrying failed connections, and fire-and-forget
//! commands for clean-up.
//!
//! Sessions are counted per connection (control socket): at most `max_sessions` at once, the
//! others wait; long-lived ones (a task's waiting session, a persistent worker) may take all
//! but two, so short commands always get through. A session the server refuses (its
//! `MaxSessions`, or a master still starting) is tried again with back-off, and reported as the
//! server's session limit if it keeps being refused. When no master runs yet, one command at a
//! time goes out (and becomes the master): a burst of tasks makes one login, not one each
//! (which the server's `MaxStartups` would throttle).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::command_line::{control_dir, ssh_args};
use crate::error::{Wording, classify, first_line};
use crate::exec::{ExecError, exec, exec_to_file};
use crate::login_shell;
use crate::{Input, RemoteError, Reply, SshOptions, shell_quote};

/// How often to try a step whose connection failed.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Tries in all (at least one).
    pub attempts: u32,
    /// Time between two tries.
    pub wait: Duration,
}

impl Retry {
    /// One try.
    pub const NONE: Retry = Retry {
        attempts: 1,
        wait: Duration::ZERO,
    };
}

/// The sessions of one connection: all of them, the long-lived ones (all but two), and the
/// start of a master.
struct Limits {
    all: Arc<Semaphore>,
    long: Arc<Semaphore>,
    connecting: tokio::sync::Mutex<()>,
    max: u32,
    /// Called when a long-lived session finds no place: each frees what it holds idle.
    crowded: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("max", &self.max).finish()
    }
}

fn limits_of(control_path: &Path, max: u32) -> Arc<Limits> {
    static ALL: LazyLock<Mutex<HashMap<PathBuf, Arc<Limits>>>> = LazyLock::new(Default::default);
    let max = max.max(1);
    ALL.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(control_path.to_path_buf())
        .or_insert_with(|| {
            Arc::new(Limits {
                all: Arc::new(Semaphore::new(max as usize)),
                long: Arc::new(Semaphore::new(max.saturating_sub(2).max(1) as usize)),
                connecting: tokio::sync::Mutex::new(()),
                max,
                crowded: Mutex::new(Vec::new()),
            })
        })
        .clone()
}

/// A session kept open for long (see [`Session::hold`]): its place among the connection's
/// sessions, given back when dropped.
#[derive(Debug)]
pub struct SessionHold {
    _all: OwnedSemaphorePermit,
    _long: OwnedSemaphorePermit,
}

/// Tries of a session the server refuses, and the first wait between two (doubling).
const REFUSED_TRIES: u32 = 8;
const REFUSED_WAIT: Duration = Duration::from_millis(50);

/// Whether ssh's stderr says the server refused a session on the shared connection (its
/// `MaxSessions`), or the connection's start was throttled (its `MaxStartups`): worth a retry
/// after a moment.
pub(crate) fn refused_session(code: Option<i32>, stderr: &str) -> bool {
    if code != Some(255) {
        return false;
    }
    let l = stderr.to_lowercase();
    [
        "session open refused",
        "session request failed",
        "open failed: administratively prohibited",
        "mux_client_request_session",
        "kex_exchange_identification",
        "connection reset by peer",
        "exceeded maxstartups",
    ]
    .iter()
    .any(|m| l.contains(m))
}

/// A target reached through the system `ssh`; cheap to clone. Every [`Session`] of the same
/// options (but `connect_timeout`) shares one master connection, also with other processes of
/// this user, through `ControlMaster=auto`; ssh starts a new master when the old one is gone.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    options: SshOptions,
    args: Vec<OsString>,
    key: String,
    control_path: PathBuf,
    target: String,
    prefix: String,
    limits: Arc<Limits>,
}

impl Session {
    /// A session for these options (no connection is made yet).
    pub fn new(options: &SshOptions) -> Result<Session, RemoteError> {
        if options.hostname.is_empty() {
            return Err(RemoteError::Local(
                "no host to connect to: set `hostname`".into(),
            ));
        }
        let key = options.connection_key();
        let control_path = match &options.control_path {
            Some(p) => PathBuf::from(p),
            None => control_dir()?.join(&key),
        };
        Ok(Session {
            inner: Arc::new(Inner {
                args: ssh_args(options, &control_path),
                options: options.clone(),
                key,
                limits: limits_of(&control_path, options.max_sessions),
                control_path,
                target: options.label(),
                prefix: String::new(),
            }),
        })
    }

    /// Names the target in messages as `what user@host:port` (e.g. "the Slurm login node"),
    /// and its options as `option_prefix` + name (e.g. `ssh.` for a table called `ssh`).
    pub fn described_as(self, what: &str, option_prefix: &str) -> Session {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.target = format!("{what} {}", inner.options.label())
            .trim()
            .to_string();
        inner.prefix = option_prefix.to_string();
        Session {
            inner: Arc::new(inner),
        }
    }

    /// `user@host:port`.
    pub fn label(&self) -> String {
        self.inner.options.label()
    }

    /// The target as messages name it.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The options it was made from.
    pub fn options(&self) -> &SshOptions {
        &self.inner.options
    }

    /// The shared connection's socket.
    pub fn control_path(&self) -> &Path {
        &self.inner.control_path
    }

    /// The `ssh` arguments of this connection, ending in `-- host`.
    pub(crate) fn raw_args(&self) -> &[OsString] {
        &self.inner.args
    }

    /// A place among the connection's sessions (held while a command of ours runs on it).
    pub(crate) async fn session_place(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.inner
            .limits
            .all
            .acquire()
            .await
            .expect("the session semaphore is never closed")
    }

    /// What identifies the connection (a short hash of the options).
    pub(crate) fn key(&self) -> &str {
        &self.inner.key
    }

    /// The `ssh` arguments that run `script` with a POSIX shell there: as it is when the login
    /// shell is known to be one, else handed to `sh -c` as one word.
    fn argv(&self, script: &str) -> Vec<OsString> {
        let mut args = self.inner.args.clone();
        if login_shell::known(self.key()) == Some(true) {
            args.push(script.into());
        } else {
            args.push(format!("sh -c {}", shell_quote(script)).into());
        }
        args
    }

    /// Asks for the login shell unless this process knows it already (see [`Self::command`]);
    /// its failures are reported as those of `script`, the step it is asked for.
    async fn learn_login_shell(&self, script: &str, timeout: Duration) -> Result<(), RemoteError> {
        if login_shell::known(self.key()).is_some() {
            return Ok(());
        }
        let reply = self
            .exec_guarded(
                || {
                    let mut c = tokio::process::Command::new("ssh");
                    c.args(&self.inner.args)
                        .arg(login_shell::PROBE)
                        .kill_on_drop(true);
                    c
                },
                Input::None,
                script,
                timeout,
            )
            .await?;
        if let Some(e) = self.classify(reply.code(), &reply.stderr) {
            return Err(e);
        }
        login_shell::learn(self.key(), &reply.stdout_text());
        Ok(())
    }

    /// `ssh ... SCRIPT`, killed when dropped; stdio is the caller's to set. The script goes to
    /// `sh -c` unless this process has learnt (from an earlier [`run`](Self::run) on this
    /// connection) that the login shell is a POSIX one.
    pub fn command(&self, script: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.args(self.argv(script)).kill_on_drop(true);
        c
    }

    /// ssh's own failure (its exit status 255) read from the command's status and stderr;
    /// `None` for the remote command's own statuses.
    pub fn classify(&self, code: Option<i32>, stderr: &str) -> Option<RemoteError> {
        let e = self.classify_plain(code, stderr)?;
        // Riding on the user's own master: a login of ours means that master is not up.
        let Some(path) = &self.inner.options.control_path else {
            return Some(e);
        };
        let master = format!(
            "; no master connection was found at `{}control_path` = {path}: log in once yourself (`ssh -M -S {path} {}`, or `ControlMaster auto` with that ControlPath in your ~/.ssh/config) and keep it open",
            self.inner.prefix, self.inner.options.hostname
        );
        Some(match e {
            RemoteError::Auth {
                target,
                reason,
                fix,
            } => RemoteError::Auth {
                target,
                reason,
                fix: format!("{fix}{master}"),
            },
            RemoteError::Connect {
                target,
                reason,
                hint,
            } => RemoteError::Connect {
                target,
                reason,
                hint: format!("{hint}{master}"),
            },
            e => e,
        })
    }

    fn classify_plain(&self, code: Option<i32>, stderr: &str) -> Option<RemoteError> {
        let o = &self.inner.options;
        classify(
            code,
            stderr,
            &Wording {
                target: &self.inner.target,
                prefix: &self.inner.prefix,
                host: &o.hostname,
                port: o.port,
                strict: o.strict_host_key_checking,
            },
        )
    }

    /// Runs `script` there, killed after `timeout`. A non-zero exit of the script is returned
    /// in the [`Reply`]; ssh's own failures are errors.
    pub async fn run(
        &self,
        script: &str,
        input: Input,
        timeout: Duration,
    ) -> Result<Reply, RemoteError> {
        self.learn_login_shell(script, timeout).await?;
        let reply = self
            .exec_guarded(|| self.command(script), input, script, timeout)
            .await?;
        match self.classify(reply.code(), &reply.stderr) {
            Some(e) => Err(e),
            None => Ok(reply),
        }
    }

    /// Whether the connection's master is known to run (its socket is there); `true` for a
    /// socket path ssh expands itself (the user's own, with `%` tokens), which is not looked at.
    fn master_up(&self) -> bool {
        let p = &self.inner.control_path;
        p.to_string_lossy().contains(['%', '~']) || p.exists()
    }

    /// Runs one ssh command as a session of the connection: waits for a place among its
    /// sessions, makes it the only one out while no master runs (it becomes the master), and
    /// tries again with back-off while the server refuses the session.
    async fn exec_guarded(
        &self,
        make: impl Fn() -> tokio::process::Command,
        input: Input,
        script: &str,
        timeout: Duration,
    ) -> Result<Reply, RemoteError> {
        let limits = &self.inner.limits;
        let _place = limits.all.acquire().await;
        let mut wait = REFUSED_WAIT;
        let mut tries = 0;
        loop {
            tries += 1;
            let reply = if self.master_up() {
                exec(make(), input.clone(), timeout).await
            } else {
                let _first = limits.connecting.lock().await;
                exec(make(), input.clone(), timeout).await
            }
            .map_err(|e| self.exec_error(e, script, timeout))?;
            if !refused_session(reply.code(), &reply.stderr) {
                return Ok(reply);
            }
            if tries >= REFUSED_TRIES {
                return Err(self.session_limit(&reply.stderr));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    /// The error of sessions the server kept refusing.
    fn session_limit(&self, stderr: &str) -> RemoteError {
        RemoteError::Remote {
            target: self.inner.target.clone(),
            step: "opening a session".into(),
            reason: format!(
                "the server kept refusing new sessions on the shared connection ({}): its MaxSessions (10 by default) is below `{}max_sessions` ({}), or other programs use the same connection; lower `{}max_sessions`, or ask for a higher MaxSessions",
                first_line(stderr),
                self.inner.prefix,
                self.inner.limits.max,
                self.inner.prefix
            ),
        }
    }

    /// How often a long-lived session waiting for a place asks idle persistent workers again to
    /// let theirs go.
    const CROWDED_RETRY: Duration = Duration::from_millis(100);

    /// A place for a long-lived session (a task's waiting session, a persistent worker's
    /// pipe) among the connection's sessions, held until the [`SessionHold`] is dropped: at
    /// most `max_sessions` − 2 at once, so short commands still get through.
    pub async fn hold(&self) -> SessionHold {
        let l = &self.inner.limits;
        loop {
            if let Some(h) = self.try_hold() {
                return h;
            }
            // Crowded: whoever keeps sessions open while idle (persistent workers) lets go;
            // asked again every so often while this waits, since a worker busy now may be idle
            // (and so free to go) a moment later.
            for free in l.crowded.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                free();
            }
            let long = l.long.clone().acquire_owned();
            if let Ok(long) = tokio::time::timeout(Self::CROWDED_RETRY, long).await {
                let long = long.expect("never closed");
                let all = l.all.clone().acquire_owned().await.expect("never closed");
                return SessionHold {
                    _all: all,
                    _long: long,
                };
            }
        }
    }

    /// Registers `free`, called when a long-lived session of this connection finds no place:
    /// it should drop the sessions its owner keeps open while idle (persistent workers).
    pub fn when_crowded(&self, free: impl Fn() + Send + Sync + 'static) {
        self.inner
            .limits
            .crowded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(free));
    }

    /// [`hold`](Self::hold) if a place is free now.
    pub fn try_hold(&self) -> Option<SessionHold> {
        let l = &self.inner.limits;
        let long = l.long.clone().try_acquire_owned().ok()?;
        let all = l.all.clone().try_acquire_owned().ok()?;
        Some(SessionHold {
            _all: all,
            _long: long,
        })
    }

    /// Makes sure the connection's master runs before a long-lived session of
    /// [`command`](Self::command) goes out (one login for a burst of them), and says what is
    /// wrong when it cannot.
    pub async fn ensure_master(&self, timeout: Duration) -> Result<(), RemoteError> {
        if self.master_up() {
            return Ok(());
        }
        self.run("true", Input::None, timeout).await.map(|_| ())
    }

    /// Whether a command's ssh status and stderr say the server refused its session (worth
    /// another try after a moment; [`run`](Self::run) does that itself).
    pub fn refused(&self, code: Option<i32>, stderr: &str) -> bool {
        refused_session(code, stderr)
    }

    /// Copies the file at `path` there into the file `dest` here, streamed (never held in
    /// memory), killed after `timeout`; returns the bytes copied. A file that is not there,
    /// or cannot be read, is an error naming it; what arrives is the caller's to check (its
    /// length and digest) before using it.
    pub async fn download(
        &self,
        path: &str,
        dest: &Path,
        timeout: Duration,
    ) -> Result<u64, RemoteError> {
        let script = format!("cat {}", shell_quote(path));
        self.learn_login_shell(&script, timeout).await?;
        let _place = self.inner.limits.all.acquire().await;
        let mut wait = REFUSED_WAIT;
        let mut tries = 0;
        let (status, n, stderr) = loop {
            tries += 1;
            let got = exec_to_file(self.command(&script), dest, timeout)
                .await
                .map_err(|e| self.exec_error(e, &script, timeout))?;
            if !refused_session(got.0.code(), &got.2) {
                break got;
            }
            if tries >= REFUSED_TRIES {
                return Err(self.session_limit(&got.2));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        };
        if let Some(e) = self.classify(status.code(), &stderr) {
            return Err(e);
        }
        if !status.success() {
            return Err(RemoteError::Local(format!(
                "cannot read {path} on {}: {stderr}",
                self.inner.target
            )));
        }
        Ok(n)
    }

    /// [`run`](Self::run), trying again after a failed connection.
    pub async fn run_retrying(
        &self,
        script: &str,
        input: Input,
        timeout: Duration,
        retry: Retry,
    ) -> Result<Reply, RemoteError> {
        let attempts = retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.run(script, input.clone(), timeout).await {
                Err(e) if e.is_retryable() && attempt < attempts => {
                    attempt += 1;
                    tokio::time::sleep(retry.wait).await;
                }
                done => return done,
            }
        }
    }

    /// [`command`](Self::command) as a `std::process::Command` (for a long-lived process
    /// whose pipes a thread of the caller serves, outside any async runtime).
    pub fn std_command(&self, script: &str) -> std::process::Command {
        let mut c = std::process::Command::new("ssh");
        c.args(self.argv(script));
        c
    }

    /// Starts `script` there and forgets it (reaped by a thread, which tries again a few
    /// times while the server refuses the session): for clean-up from `Drop`.
    pub fn fire_and_forget(&self, script: &str) {
        let args = self.argv(script);
        let run = move || {
            let mut wait = REFUSED_WAIT;
            for _ in 0..REFUSED_TRIES {
                let out = std::process::Command::new("ssh")
                    .args(&args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .output();
                match out {
                    Ok(o)
                        if refused_session(
                            o.status.code(),
                            &String::from_utf8_lossy(&o.stderr),
                        ) =>
                    {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    _ => return,
                }
            }
        };
        let _ = std::thread::Builder::new()
            .name("covalent-ssh-forget".into())
            .spawn(run);
    }

    fn exec_error(&self, e: ExecError, script: &str, limit: Duration) -> RemoteError {
        match e {
            ExecError::Spawn(e) => RemoteError::Local(format!(
                "cannot run `ssh` (is OpenSSH's client installed?): {e}"
            )),
            ExecError::Input(m) => RemoteError::Local(m),
            ExecError::Failed(m) => RemoteError::Local(format!("ssh: {m}")),
            ExecError::TimedOut => RemoteError::Timeout {
                target: self.inner.target.clone(),
                step: first_line(script),
                limit,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_line::MAX_CONTROL_PATH;

    #[test]
    fn sessions_of_the_same_target_share_a_socket() {
        let a = Session::new(&SshOptions::new("h")).unwrap();
        let b = Session::new(&SshOptions {
            connect_timeout: Duration::from_secs(3),
            ..SshOptions::new("h")
        })
        .unwrap();
        let c = Session::new(&SshOptions::new("other")).unwrap();
        assert_eq!(a.control_path(), b.control_path());
        assert_ne!(a.control_path(), c.control_path());
        assert!(a.control_path().as_os_str().len() <= MAX_CONTROL_PATH);
        let dir = a.control_path().parent().unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(dir.metadata().unwrap().permissions().mode() & 0o777, 0o700);
        assert!(Session::new(&SshOptions::default()).is_err());
    }

    #[test]
    fn descriptions_name_the_target_and_prefix_the_options() {
        let s = Session::new(&SshOptions {
            port: Some(1),
            ..SshOptions::new("h")
        })
        .unwrap()
        .described_as("the Slurm login node", "ssh.");
        assert_eq!(s.target(), "the Slurm login node h:1");
        assert_eq!(s.label(), "h:1");
        let e = s
            .classify(Some(255), "me@h: Permission denied (publickey).")
            .unwrap();
        assert!(e.to_string().contains("`ssh.username`"), "{e}");
    }
}
