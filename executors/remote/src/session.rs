//! One SSH target as `ssh` invocations ([`Session`]): running a POSIX shell script there with
//! a time limit (killed on time-out and on drop; through `sh -c` unless the login shell is a
//! POSIX one), reading ssh's own failures, retrying failed connections, and fire-and-forget
//! commands for clean-up.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::command_line::{control_dir, ssh_args};
use crate::error::{Wording, classify, first_line};
use crate::exec::{ExecError, exec, exec_to_file, forget};
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
        let control_path = control_dir()?.join(&key);
        Ok(Session {
            inner: Arc::new(Inner {
                args: ssh_args(options, &control_path),
                options: options.clone(),
                key,
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
        let mut c = tokio::process::Command::new("ssh");
        c.args(&self.inner.args)
            .arg(login_shell::PROBE)
            .kill_on_drop(true);
        let reply = exec(c, Input::None, timeout)
            .await
            .map_err(|e| self.exec_error(e, script, timeout))?;
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
        let reply = exec(self.command(script), input, timeout)
            .await
            .map_err(|e| self.exec_error(e, script, timeout))?;
        match self.classify(reply.code(), &reply.stderr) {
            Some(e) => Err(e),
            None => Ok(reply),
        }
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
        let (status, n, stderr) = exec_to_file(self.command(&script), dest, timeout)
            .await
            .map_err(|e| self.exec_error(e, &script, timeout))?;
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

    /// Starts `script` there and forgets it (reaped by a thread): for clean-up from `Drop`.
    pub fn fire_and_forget(&self, script: &str) {
        let mut c = std::process::Command::new("ssh");
        c.args(self.argv(script));
        forget(c);
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
