//! Staging this program's binary where a target runs it: as `<dir>/covalent-worker-<hash>`
//! (the content hash of the binary), shipped once per hash per target (looked for first, then
//! remembered for the rest of the process), atomically (written under a temporary name, made
//! executable, then renamed), so a task never starts a half-written binary and two processes
//! shipping at once do not clash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use covalent::executor::worker::{binary_hash, current_binary};
use tokio::sync::OnceCell;

use crate::{Input, RemoteError, Retry, Session, shell_quote};

/// The shortest time limit for shipping a binary (it may be large and the link slow).
const MIN_UPLOAD_TIME: Duration = Duration::from_secs(600);

/// The staged binary's file name for a content hash.
pub fn staged_name(hash: &str) -> String {
    format!("covalent-worker-{hash}")
}

/// Where the binary of this content hash goes in `dir` (relative: to the login directory).
pub fn staged_path(dir: &str, hash: &str) -> String {
    let name = staged_name(hash);
    match dir.trim_end_matches('/') {
        "" if dir.starts_with('/') => format!("/{name}"),
        "" => name,
        d => format!("{d}/{name}"),
    }
}

/// One cell per `target|path`: set once the binary is known to be there.
fn staged(key: String) -> Arc<OnceCell<()>> {
    static STAGED: LazyLock<Mutex<HashMap<String, Arc<OnceCell<()>>>>> =
        LazyLock::new(Default::default);
    let mut all = STAGED.lock().unwrap_or_else(|e| e.into_inner());
    all.entry(key).or_default().clone()
}

/// This program's binary and its content hash.
fn this_binary() -> Result<(PathBuf, String), RemoteError> {
    let src = current_binary()
        .map_err(|e| RemoteError::Local(format!("cannot find this program's binary: {e}")))?;
    let hash = binary_hash()
        .map_err(|e| RemoteError::Local(format!("cannot hash this program's binary: {e}")))?;
    Ok((src, hash))
}

/// The script that writes stdin to `path` atomically, creating `dir`; a failure leaves no
/// temporary file behind and exits with the failing step's status.
pub(crate) fn upload_script(dir: &str, path: &str) -> String {
    let d = shell_quote(if dir.is_empty() { "." } else { dir });
    let f = shell_quote(path);
    format!(
        "t={f}.tmp.$$\nmkdir -p {d} && cat > \"$t\" && chmod 755 \"$t\" && mv -f \"$t\" {f} || {{ s=$?; rm -f \"$t\"; exit $s; }}"
    )
}

impl Session {
    /// This program's binary in `dir` on the target, shipped if it is not there yet; returns
    /// its path there. Concurrent callers for the same target wait for one shipment. Each step
    /// has `timeout` (shipping at least ten minutes); failed connections are retried.
    pub async fn stage_binary(
        &self,
        dir: &str,
        timeout: Duration,
        retry: Retry,
    ) -> Result<String, RemoteError> {
        let (src, hash) = this_binary()?;
        let path = staged_path(dir, &hash);
        staged(format!("{}|{path}", self.key()))
            .get_or_try_init(|| self.ship(&src, dir, &path, timeout, retry))
            .await?;
        Ok(path)
    }

    async fn ship(
        &self,
        src: &Path,
        dir: &str,
        path: &str,
        timeout: Duration,
        retry: Retry,
    ) -> Result<(), RemoteError> {
        let probe = format!("test -x {}", shell_quote(path));
        if self
            .run_retrying(&probe, Input::None, timeout, retry)
            .await?
            .ok()
        {
            return Ok(());
        }
        let upload = upload_script(dir, path);
        let limit = timeout.max(MIN_UPLOAD_TIME);
        let out = self
            .run_retrying(&upload, Input::File(src.to_path_buf()), limit, retry)
            .await?;
        if out.ok() {
            return Ok(());
        }
        Err(RemoteError::Remote {
            target: self.target().to_string(),
            step: format!("shipping this program's binary to {path}"),
            reason: format!("{} (exit {:?})", out.stderr, out.code()),
        })
    }
}

/// This program's binary in `dir` on this host (copied there if it is not yet); its path.
pub async fn stage_binary_locally(dir: &str) -> Result<String, RemoteError> {
    let (src, hash) = this_binary()?;
    let path = staged_path(dir, &hash);
    staged(format!("local|{path}"))
        .get_or_try_init(|| async { copy_into_place(&src, dir, &path) })
        .await?;
    Ok(path)
}

fn copy_into_place(src: &Path, dir: &str, path: &str) -> Result<(), RemoteError> {
    if Path::new(path).exists() {
        return Ok(());
    }
    let tmp = format!("{path}.tmp.{}", std::process::id());
    std::fs::create_dir_all(if dir.is_empty() { "." } else { dir })
        .and_then(|_| std::fs::copy(src, &tmp))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            RemoteError::Local(format!("cannot stage this program's binary in {dir}: {e}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_binaries_are_named_by_hash() {
        assert_eq!(staged_name("ab12"), "covalent-worker-ab12");
        assert_eq!(
            staged_path(".cache/covalent", "ab12"),
            ".cache/covalent/covalent-worker-ab12"
        );
        assert_eq!(
            staged_path("/opt/c//", "ab12"),
            "/opt/c/covalent-worker-ab12"
        );
        assert_eq!(staged_path("/", "ab12"), "/covalent-worker-ab12");
        assert_eq!(staged_path("", "ab12"), "covalent-worker-ab12");
    }

    fn sh(script: &str, stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut c = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin).unwrap();
        c.wait_with_output().unwrap()
    }

    #[test]
    fn the_upload_renames_into_place_and_leaves_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("with space/cache").display().to_string();
        let path = staged_path(&dir, "h");
        let out = sh(&upload_script(&dir, &path), b"#!/bin/sh\necho hi\n");
        assert!(out.status.success(), "{out:?}");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["covalent-worker-h"]);
        let run = std::process::Command::new(&path).output().unwrap();
        assert_eq!(run.stdout, b"hi\n", "executable");
    }

    #[test]
    fn a_failed_upload_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().display().to_string();
        let path = staged_path(&dir, "h");
        // No file may grow: `cat` dies of SIGXFSZ after the temporary file is created.
        let out = sh(
            &format!("ulimit -f 0\n{}", upload_script(&dir, &path)),
            b"x",
        );
        assert!(!out.status.success());
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[tokio::test]
    async fn local_staging_copies_once_and_keeps_the_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bin").display().to_string();
        let path = stage_binary_locally(&dir).await.unwrap();
        assert_eq!(path, staged_path(&dir, &binary_hash().unwrap()));
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(
            len,
            std::fs::metadata(current_binary().unwrap()).unwrap().len()
        );
        assert_eq!(stage_binary_locally(&dir).await.unwrap(), path);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }
}
