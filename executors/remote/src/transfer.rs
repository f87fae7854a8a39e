//! Files between this machine and a task's directory on an ssh host, over the session's own
//! connection (its `ControlMaster` socket and options): rsync in one run for a whole batch,
//! scp when rsync is missing here or there. [`RemoteTaskDir`] is the executors'
//! [`TaskDirAccess`] for a directory there.
//!
//! This module owns the rsync and scp command lines and their fallback; what to move is the
//! runtime's (`covalent::executor::files`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use covalent::executor::files::TaskDirAccess;
use covalent::files::{rsync_here, rsync_missing_there};

use crate::{Input, RemoteError, Session, shell_quote};

/// Least time a transfer command gets, on top of a second per 10 MB it moves.
const MIN_TRANSFER_TIME: Duration = Duration::from_secs(60);

impl Session {
    /// The `ssh` options of this connection (control socket, port, user, key, ...), without
    /// the host: what rsync's `-e` and scp take.
    pub fn transport_args(&self) -> Vec<OsString> {
        let args = self.raw_args();
        let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
        args[..end].to_vec()
    }

    /// The host as rsync and scp name it (`host`; the user is in the options).
    pub fn host(&self) -> &str {
        &self.options().hostname
    }

    /// Runs a local transfer command that opens one session on this connection (under its
    /// session limit, after the master is up), killed after `timeout`: `(exit code or None on
    /// success, stderr)`.
    pub async fn run_transfer(
        &self,
        mut cmd: tokio::process::Command,
        timeout: Duration,
    ) -> Result<(Option<i32>, String), RemoteError> {
        self.ensure_master(timeout.min(Duration::from_secs(60)))
            .await?;
        let _place = self.session_place().await;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let out = match tokio::time::timeout(timeout, cmd.output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(RemoteError::Local(format!("cannot start {program}: {e}"))),
            Err(_) => {
                return Err(RemoteError::Local(format!(
                    "{program} to {} did not finish within {}",
                    self.target(),
                    humantime::format_duration(timeout)
                )));
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            return Ok((None, stderr));
        }
        if let Some(e) = self.classify(out.status.code(), &stderr) {
            return Err(e);
        }
        Ok((Some(out.status.code().unwrap_or(-1)), stderr))
    }
}

/// A task's directory on an ssh host (`dir`: absolute, or relative to the login directory).
pub struct RemoteTaskDir<'a> {
    /// The session to the host.
    pub session: &'a Session,
    /// The directory there.
    pub dir: String,
    /// The time limit of each command (a transfer gets at least a minute, plus a second per
    /// 10 MB).
    pub timeout: Duration,
}

impl RemoteTaskDir<'_> {
    fn rsync(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("rsync");
        let e: Vec<String> = std::iter::once("ssh".to_string())
            .chain(
                self.session
                    .transport_args()
                    .iter()
                    .map(|a| shell_quote(&a.to_string_lossy())),
            )
            .collect();
        // -L: the outbox's links go as the files they point at.
        c.arg("-rtL").arg("-e").arg(e.join(" "));
        if let Some(p) = &self.session.options().rsync_path {
            c.arg(format!("--rsync-path={p}"));
        }
        c
    }

    /// Runs scp with the connection's options and `args`; a server without the SFTP
    /// subsystem (which OpenSSH 9's scp speaks) is asked again in the legacy SCP protocol.
    async fn run_scp(
        &self,
        args: &[OsString],
        limit: Duration,
    ) -> Result<(Option<i32>, String), String> {
        let mut r = self
            .session
            .run_transfer(self.scp(false, args), limit)
            .await
            .map_err(|e| e.to_string());
        let no_sftp = |e: &str| e.contains("Connection closed") || e.contains("subsystem");
        let retry = match &r {
            Ok((Some(_), err)) => no_sftp(err),
            Err(e) => no_sftp(e),
            _ => false,
        };
        if retry {
            r = self
                .session
                .run_transfer(self.scp(true, args), limit)
                .await
                .map_err(|e| e.to_string());
        }
        r
    }

    /// scp with the connection's options (`-p port` is `-P` there, `-l user` a `User=`).
    fn scp(&self, legacy: bool, extra: &[OsString]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("scp");
        c.arg("-B").arg("-q").arg("-p");
        if legacy {
            c.arg("-O");
        }
        let args = self.session.transport_args();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.to_str() {
                Some("-T") => {}
                Some("-p") => {
                    if let Some(v) = it.next() {
                        c.arg("-P").arg(v);
                    }
                }
                Some("-l") => {
                    if let Some(v) = it.next() {
                        c.arg("-o").arg(format!("User={}", v.to_string_lossy()));
                    }
                }
                _ => {
                    c.arg(a);
                }
            }
        }
        c.args(extra);
        c
    }

    fn remote(&self, rel: &str) -> String {
        let dir = self.dir.trim_end_matches('/');
        if rel.is_empty() {
            format!("{}:{dir}/", self.session.host())
        } else {
            format!("{}:{dir}/{rel}", self.session.host())
        }
    }

    fn limit(&self, bytes: u64) -> Duration {
        self.timeout.max(MIN_TRANSFER_TIME) + Duration::from_secs(bytes / 10_000_000)
    }

    async fn mkdirs(&self, rels: &[String]) -> Result<(), String> {
        let dir = self.dir.trim_end_matches('/');
        let mut dirs: Vec<String> = vec![shell_quote(dir)];
        for r in rels {
            if let Some((d, _)) = r.rsplit_once('/') {
                let q = shell_quote(&format!("{dir}/{d}"));
                if !dirs.contains(&q) {
                    dirs.push(q);
                }
            }
        }
        let r = self
            .session
            .run(
                &format!("mkdir -p {}", dirs.join(" ")),
                Input::None,
                self.timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
        if r.ok() {
            Ok(())
        } else {
            Err(format!(
                "cannot make the task's directory {dir} on {}: {}",
                self.session.target(),
                r.stderr
            ))
        }
    }
}

fn hint(stderr: &str) -> &'static str {
    if stderr.contains("Permission denied") {
        " (permission denied: check the directory's rights there)"
    } else if stderr.contains("No space left") || stderr.contains("Disk quota") {
        " (no space left there)"
    } else {
        ""
    }
}

#[covalent::executor::async_trait]
impl TaskDirAccess for RemoteTaskDir<'_> {
    fn uri(&self, rel: &str) -> String {
        let o = self.session.options();
        let dir = self.dir.trim_end_matches('/');
        let path = if dir.starts_with('/') {
            format!("{dir}/{rel}")
        } else {
            format!("/~/{dir}/{rel}")
        };
        format!("ssh://{}{path}", o.label())
    }

    async fn put(&self, files: &[(PathBuf, String)]) -> Result<&'static str, String> {
        let rels: Vec<String> = files.iter().map(|f| f.1.clone()).collect();
        self.mkdirs(&rels).await?;
        // The batch laid out as the task's directory will hold it, as symbolic links to the
        // files (whatever file system they are on; rsync -L and scp send what they point at),
        // then sent in one run.
        let outbox = std::env::temp_dir().join(format!("covalent-outbox-{}", uuid_like()));
        let laid = (|| -> Result<u64, String> {
            let mut bytes = 0;
            let mut made = std::collections::HashSet::new();
            for (src, rel) in files {
                let dest = outbox.join(rel);
                if let Some(p) = dest.parent()
                    && made.insert(p.to_path_buf())
                {
                    std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
                }
                let abs =
                    std::path::absolute(src).map_err(|e| format!("{}: {e}", src.display()))?;
                bytes += std::fs::metadata(&abs)
                    .map_err(|e| format!("{}: {e}", src.display()))?
                    .len();
                std::os::unix::fs::symlink(&abs, &dest)
                    .map_err(|e| format!("{}: {e}", dest.display()))?;
            }
            Ok(bytes)
        })();
        let bytes = match laid {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&outbox);
                return Err(e);
            }
        };
        let limit = self.limit(bytes);
        let sent = self.send_tree(&outbox, &rels, limit).await;
        let _ = std::fs::remove_dir_all(&outbox);
        sent
    }

    async fn get(&self, rels: &[String], local_dir: &Path) -> Result<&'static str, String> {
        let limit = self.limit(0) + Duration::from_secs(rels.len() as u64);
        if rsync_here() {
            let list = local_dir.join(".covalent-files-from");
            std::fs::write(&list, rels.join("\n") + "\n")
                .map_err(|e| format!("{}: {e}", list.display()))?;
            let mut c = self.rsync();
            c.arg(format!("--files-from={}", list.display()))
                .arg(self.remote(""))
                .arg(local_dir);
            let r = self.session.run_transfer(c, limit).await;
            let _ = std::fs::remove_file(&list);
            match r.map_err(|e| e.to_string())? {
                (None, _) => return Ok("rsync"),
                (Some(code), err) if !rsync_missing_there(Some(code), &err) => {
                    return Err(format!(
                        "rsync from {} failed{}: {err}",
                        self.session.target(),
                        hint(&err)
                    ));
                }
                _ => {}
            }
        }
        for rel in rels {
            let dest = local_dir.join(rel);
            if let Some(p) = dest.parent() {
                std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            let args = [
                OsString::from(self.remote(rel)),
                dest.clone().into_os_string(),
            ];
            if let (Some(_), err) = self.run_scp(&args, limit).await? {
                return Err(format!(
                    "scp of {rel} from {} failed{}: {err}",
                    self.session.target(),
                    hint(&err)
                ));
            }
        }
        Ok("scp")
    }
}

impl RemoteTaskDir<'_> {
    async fn send_tree(
        &self,
        outbox: &Path,
        rels: &[String],
        limit: Duration,
    ) -> Result<&'static str, String> {
        if rsync_here() {
            let mut c = self.rsync();
            c.arg(format!("{}/", outbox.display())).arg(self.remote(""));
            match self
                .session
                .run_transfer(c, limit)
                .await
                .map_err(|e| e.to_string())?
            {
                (None, _) => return Ok("rsync"),
                (Some(code), err) if !rsync_missing_there(Some(code), &err) => {
                    return Err(format!(
                        "rsync to {} failed{}: {err}",
                        self.session.target(),
                        hint(&err)
                    ));
                }
                _ => {}
            }
        }
        // scp: one run per file, to a temporary name renamed in place (scp itself writes in
        // place, so a cut transfer must not leave the file half there).
        let mut renames = Vec::new();
        for rel in rels {
            let part = format!("{rel}.covalent-part");
            let args = [
                outbox.join(rel).into_os_string(),
                OsString::from(self.remote(&part)),
            ];
            if let (Some(_), err) = self.run_scp(&args, limit).await? {
                return Err(format!(
                    "scp of {rel} to {} failed{}: {err}",
                    self.session.target(),
                    hint(&err)
                ));
            }
            let dir = self.dir.trim_end_matches('/');
            renames.push(format!(
                "mv -f {} {}",
                shell_quote(&format!("{dir}/{part}")),
                shell_quote(&format!("{dir}/{rel}"))
            ));
        }
        let r = self
            .session
            .run(&renames.join(" && "), Input::None, self.timeout)
            .await
            .map_err(|e| e.to_string())?;
        if !r.ok() {
            return Err(format!("putting the files in place failed: {}", r.stderr));
        }
        Ok("scp")
    }
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{t:x}", std::process::id())
}
