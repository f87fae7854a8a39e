//! Staging this program's binary where a target runs it: as `<dir>/covalent-worker-<hash>`
//! (the content hash of the binary), shipped once per hash per target (looked for first, then
//! remembered for the rest of the process), atomically (written under a temporary name, made
//! executable, then renamed), so a task never starts a half-written binary and two processes
//! shipping at once do not clash. Staging a new build prunes the directory: beyond the
//! [`KEEP_BINARIES`] most recently used builds, those unused for a day are removed (each
//! staging by a process marks its build used), so rebuilding often does not fill a home
//! directory's quota, while a build whose jobs may still wait in a queue stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use covalent::executor::worker::{binary_hash, current_binary};
use tokio::sync::OnceCell;

use crate::{Input, RemoteError, Retry, Session, shell_quote};

/// Builds a binary directory keeps whatever their age (the most recently used ones).
pub const KEEP_BINARIES: usize = 3;

/// Beyond those, a build unused for this long is removed.
const UNUSED_FOR: Duration = Duration::from_secs(24 * 3600);

/// Shell lines that prune `dir` as [`prune_locally`] does (never touching a file being
/// written, or one not named like a staged build).
pub(crate) fn prune_script(dir: &str) -> String {
    let d = shell_quote(if dir.is_empty() { "." } else { dir });
    format!(
        "ls -t {d} 2>/dev/null | grep '^covalent-worker-[0-9a-f]*$' | tail -n +{} | while read -r f; do [ -n \"$(find {d}/\"$f\" -mmin +{} 2>/dev/null)\" ] && rm -f {d}/\"$f\"; done; true",
        KEEP_BINARIES + 1,
        UNUSED_FOR.as_secs() / 60
    )
}

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
        "t={f}.tmp.$$\nmkdir -p {d} && cat > \"$t\" && chmod 755 \"$t\" && mv -f \"$t\" {f} || {{ s=$?; rm -f \"$t\"; exit $s; }}\n{}",
        prune_script(dir)
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
        // Found: marked used (it stays among the kept builds).
        let probe = format!("test -x {p} && touch {p}", p = shell_quote(path));
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
        // Marked used: it stays among the kept builds.
        let _ = std::fs::File::options()
            .append(true)
            .open(path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        return Ok(());
    }
    let tmp = format!("{path}.tmp.{}", std::process::id());
    std::fs::create_dir_all(if dir.is_empty() { "." } else { dir })
        .and_then(|_| std::fs::copy(src, &tmp))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            RemoteError::Local(format!("cannot stage this program's binary in {dir}: {e}"))
        })?;
    prune_locally(dir);
    Ok(())
}

/// Removes, beyond the [`KEEP_BINARIES`] most recently used builds of a local directory, those
/// unused for [`UNUSED_FOR`].
fn prune_locally(dir: &str) {
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return;
    };
    let mut builds: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.strip_prefix("covalent-worker-")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    builds.sort_by_key(|b| std::cmp::Reverse(b.0));
    let Some(cutoff) = std::time::SystemTime::now().checked_sub(UNUSED_FOR) else {
        return;
    };
    for (used, old) in builds.into_iter().skip(KEEP_BINARIES) {
        if used < cutoff {
            let _ = std::fs::remove_file(old);
        }
    }
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

    #[test]
    fn only_the_most_recently_used_builds_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        let now = std::time::SystemTime::now();
        let hours = |h: u64| now - Duration::from_secs(h * 3600);
        // Last used: five days ago, an hour ago, and the three newest minutes ago.
        for (h, used) in [
            ("aa", hours(120)),
            ("bb", hours(1)),
            ("cc", now - Duration::from_secs(120)),
            ("dd", hours(0) - Duration::from_secs(60)),
            ("ee", now),
        ] {
            let p = dir.join(staged_name(h));
            std::fs::write(&p, h).unwrap();
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(used).unwrap();
        }
        std::fs::write(dir.join("covalent-worker-ff.tmp.12"), "partial").unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let names = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let remote = dir.join("remote");
        std::fs::create_dir_all(&remote).unwrap();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.path().is_file() {
                let to = remote.join(e.file_name());
                std::fs::copy(e.path(), &to).unwrap();
                let m = e.metadata().unwrap().modified().unwrap();
                std::fs::File::options()
                    .append(true)
                    .open(&to)
                    .unwrap()
                    .set_modified(m)
                    .unwrap();
            }
        }
        prune_locally(&dir.display().to_string());
        let kept = [
            "covalent-worker-bb",
            "covalent-worker-cc",
            "covalent-worker-dd",
            "covalent-worker-ee",
            "covalent-worker-ff.tmp.12",
            "notes.txt",
        ];
        let mut here = names(&dir);
        here.retain(|n| n != "remote");
        assert_eq!(here, kept);
        // The same by the shell lines a remote directory is pruned with.
        let out = sh(&prune_script(&remote.display().to_string()), b"");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(names(&remote), kept);
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
