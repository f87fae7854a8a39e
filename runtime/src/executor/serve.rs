//! The dispatcher's side of a serving worker ([`SERVE_ENV`](super::worker::SERVE_ENV)): a
//! child process of this program (its binary directly, or a command that starts it elsewhere,
//! such as `srun` or `ssh`) that first says where it runs ([`ServeHello`]), then answers one
//! [`ServeRequest`] line with one [`ServeReply`] line, task after task.
//!
//! One thread of ours per worker does the blocking pipe I/O, so a worker is not tied to the
//! async runtime of the dispatch that started it and can serve the dispatches that follow.
//! Dropping a [`ServingWorker`] kills its child (the command started: what that command
//! started elsewhere is the caller's to stop, such as a Slurm step) and reaps it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};

use super::child::describe_exit;
use super::worker::{ServeHello, ServeReply, ServeRequest};

/// A worker command's own stderr (what `ssh` or `srun` says), captured in a temporary file
/// that is unlinked as soon as it is open: nothing is left behind, whatever happens to this
/// process. Give [`StderrCapture::new`]'s second value to the command as its stderr.
#[derive(Debug)]
pub struct StderrCapture {
    file: std::fs::File,
}

impl StderrCapture {
    /// The capture, and the file handle for the command's stderr.
    pub fn new() -> std::io::Result<(StderrCapture, std::fs::File)> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            ".covalent-stderr-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        let child = file.try_clone()?;
        Ok((StderrCapture { file }, child))
    }

    /// What the command has written so far.
    pub fn text(&self) -> String {
        use std::os::unix::fs::FileExt;
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0) as usize;
        let mut buf = vec![0; len];
        let n = self.file.read_at(&mut buf, 0).unwrap_or(0);
        buf.truncate(n);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// How a worker's command ended, once it has.
fn ended(child: &mut std::process::Child) -> String {
    match child.wait() {
        Ok(status) => describe_exit(status),
        Err(e) => format!("could not be waited for ({e})"),
    }
}

/// One request for the worker's thread: its line, and where the answer goes.
struct Job {
    line: Vec<u8>,
    answer: tokio::sync::oneshot::Sender<Result<String, String>>,
}

/// A running serving worker (see the module docs).
pub struct ServingWorker {
    pid: u32,
    jobs: mpsc::Sender<Job>,
    hello: Mutex<Option<tokio::sync::oneshot::Receiver<Result<String, String>>>>,
    /// Cleared once its command is seen to have ended (looked at twice a second while idle).
    alive: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for ServingWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingWorker")
            .field("pid", &self.pid)
            .finish()
    }
}

impl ServingWorker {
    /// Starts `cmd` with its stdin and stdout as the request and reply pipes (its stderr is
    /// left as the caller set it).
    pub fn start(mut cmd: Command) -> std::io::Result<ServingWorker> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let (Some(mut to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("the worker has no pipes"));
        };
        let (jobs, queue) = mpsc::channel::<Job>();
        let (said, hello) = tokio::sync::oneshot::channel();
        let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let watched = alive.clone();
        std::thread::Builder::new()
            .name("covalent-serving-worker".into())
            .spawn(move || {
                let mut from = BufReader::new(from);
                let mut line = String::new();
                match from.read_line(&mut line) {
                    Ok(n) if n > 0 => {
                        let _ = said.send(Ok(std::mem::take(&mut line)));
                    }
                    _ => {
                        let how = ended(&mut child);
                        let _ = said.send(Err(how.clone()));
                        // Every request gets the same answer.
                        for job in queue {
                            let _ = job.answer.send(Err(how.clone()));
                        }
                        return;
                    }
                }
                loop {
                    let job = match queue.recv_timeout(std::time::Duration::from_millis(500)) {
                        Ok(job) => job,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            // Idle: has it ended (a step cancelled from outside, a host gone)?
                            if !matches!(child.try_wait(), Ok(None)) {
                                watched.store(false, std::sync::atomic::Ordering::Release);
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    line.clear();
                    let sent = to.write_all(&job.line).and_then(|()| to.flush());
                    let read = sent.and_then(|()| from.read_line(&mut line));
                    match read {
                        Ok(n) if n > 0 => {
                            let _ = job.answer.send(Ok(std::mem::take(&mut line)));
                        }
                        _ => {
                            // It ended (or was killed) before answering.
                            watched.store(false, std::sync::atomic::Ordering::Release);
                            let _ = job.answer.send(Err(ended(&mut child)));
                            return;
                        }
                    }
                }
                // Dropped: stop it and reap it.
                let _ = child.kill();
                let _ = child.wait();
            })?;
        Ok(ServingWorker {
            pid,
            jobs,
            hello: Mutex::new(Some(hello)),
            alive,
        })
    }

    /// Whether its command may still run: `false` once it is known to have ended (an idle
    /// worker's end is noticed within half a second). A pool drops such a worker instead of
    /// handing it a task.
    pub fn is_alive(&self) -> bool {
        self.alive.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The process id of the command started (here, on this host).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the worker's first line: where it runs. `Err` says how it ended instead
    /// (only the first call waits; later ones are an error).
    pub async fn hello(&self) -> Result<ServeHello, String> {
        let Some(rx) = self.hello.lock().unwrap().take() else {
            return Err("the worker's hello was read already".into());
        };
        let line = rx
            .await
            .map_err(|_| "the worker's thread ended".to_string())??;
        serde_json::from_str(&line).map_err(|e| {
            format!(
                "the worker's first line is not a hello ({e}): {}",
                line.trim()
            )
        })
    }

    /// Sends one request and waits for its reply. `Err(how)`: the worker ended without
    /// answering (`how` as [`describe_exit`] says it), or its reply was not readable.
    pub async fn request(&self, req: &ServeRequest) -> Result<ServeReply, String> {
        let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job { line, answer })
            .map_err(|_| "had ended".to_string())?;
        let text = answered.await.map_err(|_| "had ended".to_string())??;
        serde_json::from_str(&text).map_err(|e| format!("answered what is not a reply ({e})"))
    }
}
