//! The dispatcher's side of file transfers, for out-of-process executors: what a task's
//! envelope says about files ([`TaskFiles`]), and the two steps an executor whose tasks run
//! away from this machine takes around each task: [`send`] (before: the files of this machine
//! the task needs, into its directory, in one batch) and [`receive`] (after: the files the task
//! made that come back here, checked and put in place; and the records of the transfers the
//! worker made). How bytes reach a task's directory is the executor's: a [`TaskDirAccess`]
//! (a local directory, [`LocalTaskDir`]; an ssh host, in `covalent-remote`).
//!
//! This module owns the protocol between the two sides; the transfers where the task runs are
//! `crate::files`'.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::electron::TaskError;
use crate::files::{self, Fetch, Location, Planned, StagedInput, TransferRecord};

use super::{ExecutorError, Task, TaskContext};

/// What a task's envelope says about files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskFiles {
    /// The task's directory, which the worker makes and enters (`None`: where it starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Whether the worker empties `dir` before the task (a serving worker's task directory,
    /// one for the tasks it runs one after another).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_dir: bool,
    /// Where this attempt's downloads go when the task has no directory of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_dir: Option<String>,
    /// For a task away from the dispatcher: the dispatcher's directory the files it makes go
    /// to (what their URIs name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// For a task on an ssh host: that host (`user@host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub here: Option<String>,
    /// The electron's `files = [...]`, resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<Planned>,
    /// What the dispatcher staged into the task's directory ([`send`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staged: Vec<StagedInput>,
}

impl TaskFiles {
    /// The scope a worker runs the task in (`dir`: its directory, absolute).
    pub fn scope(&self, dir: Option<PathBuf>, attempt: u32) -> files::Scope {
        files::Scope {
            dir,
            attempt_dir: self.attempt_dir.as_ref().map(PathBuf::from),
            home: self.home.as_ref().map(PathBuf::from),
            here: self.here.clone(),
            staged: self.staged.clone(),
            planned: self.planned.clone(),
            attempt,
            ..Default::default()
        }
    }
}

/// This attempt's directory among the dispatch's results: `<results>/<dispatch>/files/
/// <node>-<attempt>` (where files a task away from here makes come back to, and the task
/// directory of an electron with transfers beside the dispatcher).
pub fn attempt_dir(ctx: &TaskContext) -> PathBuf {
    attempt_dir_in(&ctx.inner.results_dir, ctx.node_id(), ctx.attempt())
}

pub(crate) fn attempt_dir_in(results: &Path, node: usize, attempt: u32) -> PathBuf {
    results.join("files").join(format!("{node}-{attempt}"))
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
}

fn transfer_error(msg: String) -> ExecutorError {
    ExecutorError::Task(TaskError::Transfer(msg))
}

/// The files part of the envelope of a task that runs beside the dispatcher (on this machine,
/// seeing its files): the worker makes every transfer itself.
pub(crate) fn here(task: &Task, ctx: &TaskContext) -> Result<TaskFiles, ExecutorError> {
    let planned = files::plan(task.def.files, false, &cwd()).map_err(transfer_error)?;
    let dir = attempt_dir(ctx);
    Ok(TaskFiles {
        dir: (!planned.is_empty()).then(|| dir.display().to_string()),
        attempt_dir: Some(dir.display().to_string()),
        planned,
        ..Default::default()
    })
}

/// The files part of the envelope of a task that runs away from this machine (an ssh host, a
/// Slurm job, a container), on `here` (the ssh authority of its host, when it has one): files
/// of this machine are the dispatcher's to move ([`send`], [`receive`]), everything else the
/// worker's.
pub fn away(
    task: &Task,
    ctx: &TaskContext,
    here: Option<String>,
) -> Result<TaskFiles, ExecutorError> {
    Ok(TaskFiles {
        home: Some(attempt_dir(ctx).display().to_string()),
        here,
        planned: files::plan(task.def.files, true, &cwd()).map_err(transfer_error)?,
        ..Default::default()
    })
}

/// How the dispatcher reaches a task's directory.
#[async_trait::async_trait]
pub trait TaskDirAccess: Send + Sync {
    /// The URI of `rel` in the task's directory (for records).
    fn uri(&self, rel: &str) -> String;
    /// Puts each local file at its path relative to the task's directory (made whole or not
    /// at all; directories made); returns the strategy used (`copy`, `rsync`, `scp`, ...).
    async fn put(&self, files: &[(PathBuf, String)]) -> Result<&'static str, String>;
    /// Copies each path relative to the task's directory into `local_dir` under the same
    /// relative path; returns the strategy used.
    async fn get(&self, rels: &[String], local_dir: &Path) -> Result<&'static str, String>;
}

/// A task directory on this machine's file system (a Slurm job directory submitted from
/// here, a container's mounted work directory).
#[derive(Clone, Debug)]
pub struct LocalTaskDir(pub PathBuf);

#[async_trait::async_trait]
impl TaskDirAccess for LocalTaskDir {
    fn uri(&self, rel: &str) -> String {
        format!("file://{}", self.0.join(rel).display())
    }
    async fn put(&self, list: &[(PathBuf, String)]) -> Result<&'static str, String> {
        let dir = self.0.clone();
        let list = list.to_vec();
        blocking(move || {
            let mut how = "copy";
            for (src, rel) in &list {
                how = files::copy_local(src, &dir.join(rel), None)?.strategy;
            }
            Ok(how)
        })
        .await
    }
    async fn get(&self, rels: &[String], local_dir: &Path) -> Result<&'static str, String> {
        let dir = self.0.clone();
        let (rels, to) = (rels.to_vec(), local_dir.to_path_buf());
        blocking(move || {
            for rel in &rels {
                files::copy_local(&dir.join(rel), &to.join(rel), None)?;
            }
            Ok("copy")
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("a transfer thread failed: {e}"))?
}

/// Before a task away from this machine starts: sends the files of this machine it needs into
/// its directory, in one batch: the `stage_in`s of local paths, and the local files among its
/// inputs (each checked against the content it was named with). Records every file on the
/// node and notes them in `envelope_files` for the worker to check.
pub async fn send(
    envelope_files: &mut TaskFiles,
    inputs: &[serde_json::Value],
    access: &dyn TaskDirAccess,
    ctx: &TaskContext,
) -> Result<(), ExecutorError> {
    let mut list: Vec<(PathBuf, String, String, Option<String>)> = Vec::new();
    for p in &envelope_files.planned {
        if p.by == files::By::Dispatcher
            && p.order == files::Order::Before
            && let Ok(Location::Local(path)) = Location::parse(&p.from)
        {
            list.push((path, p.to.clone(), p.from.clone(), None));
        }
    }
    let mut found = Vec::new();
    for v in inputs {
        files::files_in_json(v, &mut found);
    }
    for f in found {
        if let Location::Local(path) = f.location()
            && !list.iter().any(|x| x.2 == f.uri())
        {
            let rel = format!("covalent-inputs/{}-{}", list.len(), f.file_name());
            list.push((
                path,
                rel,
                f.uri().to_string(),
                f.blake3().map(str::to_string),
            ));
        }
    }
    if list.is_empty() {
        return Ok(());
    }
    // Each file's identity, checked against what it was named with: hashed while the batch
    // goes out (both read the same pages), so the check costs no extra pass over the files.
    let paths: Vec<(PathBuf, String, Option<String>)> = list
        .iter()
        .map(|(p, _, uri, want)| (p.clone(), uri.clone(), want.clone()))
        .collect();
    let hashing = blocking(move || {
        paths
            .iter()
            .map(|(p, uri, want)| {
                let (n, h) = files::hash_file(p).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        format!("transfer of {uri}: the source {} does not exist", p.display())
                    }
                    _ => format!("transfer of {uri}: {} cannot be read: {e}", p.display()),
                })?;
                if let Some(w) = want
                    && *w != h
                {
                    return Err(format!(
                        "transfer of {uri}: checksum mismatch, the file has BLAKE3 {h} but was named with {w}: it changed since it was passed to the dispatch"
                    ));
                }
                Ok((n, h))
            })
            .collect::<Result<Vec<_>, String>>()
    });
    let t0 = Instant::now();
    let pairs: Vec<(PathBuf, String)> = list.iter().map(|x| (x.0.clone(), x.1.clone())).collect();
    let (sums, put) = tokio::join!(hashing, access.put(&pairs));
    let sums = match sums {
        Ok(s) => s,
        Err(e) => {
            ctx.record_transfer(failed_record("in", &list[0].2, &access.uri(&list[0].1), &e));
            return Err(transfer_error(e));
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    for ((_, rel, uri, _), (n, h)) in list.iter().zip(&sums) {
        ctx.record_transfer(TransferRecord {
            attempt: ctx.attempt(),
            direction: "in".into(),
            source: uri.clone(),
            destination: access.uri(rel),
            strategy: put.as_ref().map(|s| *s).unwrap_or("copy").to_string(),
            via: "dispatcher".into(),
            bytes: *n,
            seconds: secs,
            blake3: put.is_ok().then(|| h.clone()),
            error: put.as_ref().err().cloned(),
        });
        envelope_files.staged.push(StagedInput {
            uri: uri.clone(),
            rel: rel.clone(),
            blake3: h.clone(),
            size: *n,
        });
    }
    put.map(|_| ()).map_err(|e| {
        transfer_error(format!(
            "staging {} file(s) into the task's directory failed: {e}",
            list.len()
        ))
    })
}

fn failed_record(direction: &str, source: &str, destination: &str, e: &str) -> TransferRecord {
    TransferRecord {
        attempt: 0,
        direction: direction.into(),
        source: source.into(),
        destination: destination.into(),
        strategy: "copy".into(),
        via: "dispatcher".into(),
        bytes: 0,
        seconds: 0.0,
        blake3: None,
        error: Some(e.into()),
    }
}

/// After a task away from this machine ended: records the transfers its worker made, then
/// brings home the files it made for this machine (`stage_out`s to local paths, returned
/// [`File::output`](crate::files::File::output)s), in one batch, each checked against the
/// BLAKE3 taken where it was made and put in place whole (a temporary name, then a rename).
/// A failure fails the attempt as a `transfer` error (retried per the electron's `retries`).
pub async fn receive(
    transfers: &[TransferRecord],
    fetch: &[Fetch],
    access: &dyn TaskDirAccess,
    ctx: &TaskContext,
) -> Result<(), ExecutorError> {
    for r in transfers {
        ctx.record_transfer(r.clone());
    }
    if fetch.is_empty() {
        return Ok(());
    }
    let incoming = ctx
        .inner
        .results_dir
        .join("files")
        .join(format!(".incoming-{}", uuid::Uuid::now_v7().simple()));
    let t0 = Instant::now();
    let rels: Vec<String> = fetch.iter().map(|f| f.rel.clone()).collect();
    let got = match std::fs::create_dir_all(&incoming) {
        Ok(()) => access.get(&rels, &incoming).await,
        Err(e) => Err(format!("cannot make {}: {e}", incoming.display())),
    };
    let secs = t0.elapsed().as_secs_f64();
    let mut first_error = None;
    for f in fetch {
        let arrived = incoming.join(&f.rel);
        let outcome = match &got {
            Err(e) => Err(e.clone()),
            Ok(_) => {
                let (arrived, to, f) = (arrived.clone(), PathBuf::from(&f.to), f.clone());
                blocking(move || settle_home(&arrived, &to, &f)).await
            }
        };
        ctx.record_transfer(TransferRecord {
            attempt: ctx.attempt(),
            direction: "out".into(),
            source: access.uri(&f.rel),
            destination: format!("file://{}", f.to),
            strategy: got.as_ref().map(|s| *s).unwrap_or("copy").to_string(),
            via: "dispatcher".into(),
            bytes: f.size,
            seconds: secs,
            blake3: outcome.is_ok().then(|| f.blake3.clone()),
            error: outcome.as_ref().err().cloned(),
        });
        if let Err(e) = outcome
            && first_error.is_none()
        {
            first_error = Some(format!(
                "bringing back {} ({}) to {} failed: {e}",
                f.rel, f.why, f.to
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&incoming);
    match first_error {
        Some(e) => Err(transfer_error(e)),
        None => Ok(()),
    }
}

/// Checks a file that arrived against what the task saw, and moves it to `to` (whole).
fn settle_home(arrived: &Path, to: &Path, f: &Fetch) -> Result<(), String> {
    let (n, h) = files::hash_file(arrived).map_err(|e| format!("nothing arrived ({e})"))?;
    if n != f.size {
        return Err(format!(
            "{n} bytes arrived where the task left {}: cut short on its way",
            f.size
        ));
    }
    if h != f.blake3 {
        return Err(format!(
            "checksum mismatch: BLAKE3 {h} arrived where the task left {}",
            f.blake3
        ));
    }
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p).map_err(|e| {
            format!(
                "cannot make the destination's directory {}: {e}",
                p.display()
            )
        })?;
    }
    let tmp = files::part_path(to);
    let placed = std::fs::rename(arrived, &tmp)
        .or_else(|_| std::fs::copy(arrived, &tmp).map(|_| ()))
        .and_then(|()| std::fs::rename(&tmp, to));
    placed.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => format!(
                "the destination {} cannot be written (permission denied): pick a directory you can write to",
                to.display()
            ),
            _ => format!("cannot put it in place at {}: {e}", to.display()),
        }
    })
}
