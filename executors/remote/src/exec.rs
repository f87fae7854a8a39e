//! Running one command to its end: its input ([`Input`]), what it gave back ([`Reply`]), a
//! time limit (the command is killed when it passes it or when the caller is dropped), and
//! fire-and-forget starts for clean-up. [`run_local`] runs a script with `sh` on this host.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::RemoteError;
use crate::error::first_line;

/// A command's standard input.
#[derive(Clone, Debug)]
pub enum Input {
    /// Nothing (`/dev/null`).
    None,
    /// These bytes.
    Bytes(Vec<u8>),
    /// This local file's contents.
    File(PathBuf),
}

/// What a command gave back.
#[derive(Debug)]
pub struct Reply {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error, trailing white space removed.
    pub stderr: String,
}

impl Reply {
    /// Whether it exited with status 0.
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    /// Its exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    /// Its standard output as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `script` with `sh -c` on this host, killed after `timeout`.
pub async fn run_local(
    script: &str,
    input: Input,
    timeout: Duration,
) -> Result<Reply, RemoteError> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c").arg(script).kill_on_drop(true);
    exec(c, input, timeout).await.map_err(|e| match e {
        ExecError::Spawn(e) => RemoteError::Local(format!("cannot start sh: {e}")),
        ExecError::Input(m) => RemoteError::Local(m),
        ExecError::Failed(m) => RemoteError::Local(format!("sh: {m}")),
        ExecError::TimedOut => RemoteError::Timeout {
            target: "this host".into(),
            step: first_line(script),
            limit: timeout,
        },
    })
}

/// Starts `script` with `sh -c` on this host and forgets it.
pub fn fire_and_forget_local(script: &str) {
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(script);
    forget(c);
}

pub(crate) fn forget(mut c: std::process::Command) {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Ok(mut child) = c.spawn() {
        std::thread::spawn(move || child.wait());
    }
}

/// Why a command did not run to its end.
pub(crate) enum ExecError {
    /// The program could not start.
    Spawn(std::io::Error),
    /// The input file could not be opened.
    Input(String),
    /// Waiting for it failed.
    Failed(String),
    /// It ran past its time limit and was killed.
    TimedOut,
}

/// Runs a command (set to be killed on drop) with `input` on its stdin, collecting its output;
/// dropping the future at the time limit kills it.
pub(crate) async fn exec(
    mut cmd: tokio::process::Command,
    input: Input,
    timeout: Duration,
) -> Result<Reply, ExecError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
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
                .map_err(|e| ExecError::Input(format!("cannot read {}: {e}", p.display())))?;
            cmd.stdin(Stdio::from(f));
        }
    }
    let mut child = cmd.spawn().map_err(ExecError::Spawn)?;
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
        Ok(Err(e)) => return Err(ExecError::Failed(e.to_string())),
        Err(_) => return Err(ExecError::TimedOut),
    };
    Ok(Reply {
        status: out.status,
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
    })
}

/// Runs a command (set to be killed on drop) with nothing on its stdin, streaming its stdout
/// into the file `dest` (created); returns its status, the bytes written and its stderr.
pub(crate) async fn exec_to_file(
    mut cmd: tokio::process::Command,
    dest: &std::path::Path,
    timeout: Duration,
) -> Result<(ExitStatus, u64, String), ExecError> {
    use tokio::io::AsyncReadExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| ExecError::Input(format!("cannot create {}: {e}", dest.display())))?;
    let mut child = cmd.spawn().map_err(ExecError::Spawn)?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let run = async move {
        let copy = async {
            match &mut out {
                Some(o) => {
                    let n = tokio::io::copy(o, &mut file).await?;
                    file.flush().await?;
                    file.sync_data().await?;
                    Ok::<u64, std::io::Error>(n)
                }
                None => Ok(0),
            }
        };
        let errs = async {
            let mut e = Vec::new();
            if let Some(r) = &mut err {
                let _ = r.read_to_end(&mut e).await;
            }
            e
        };
        let (n, e) = tokio::join!(copy, errs);
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, n?, e))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok((status, n, e))) => Ok((
            status,
            n,
            String::from_utf8_lossy(&e).trim_end().to_string(),
        )),
        Ok(Err(e)) => Err(ExecError::Failed(e.to_string())),
        Err(_) => Err(ExecError::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_scripts_get_their_input_and_are_killed_at_the_limit() {
        let r = run_local(
            "cat; echo err >&2; exit 3",
            Input::Bytes(b"in".to_vec()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            (r.code(), r.stdout_text().as_str(), r.stderr.as_str()),
            (Some(3), "in", "err")
        );
        let start = std::time::Instant::now();
        let e = run_local("sleep 30", Input::None, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            e.to_string()
                .contains("`sleep 30` on this host did not finish within 200ms"),
            "{e}"
        );
    }
}
