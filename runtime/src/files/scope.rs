//! The files side of one running task: its directory, where files it makes go, what the
//! dispatcher staged for it, what it has fetched and the transfers it made. One [`Scope`] per
//! task, held in a thread-local while its hooks and body run (and re-entered around each poll
//! of an async body).
//!
//! This module owns the scope and materialising a [`File`](super::File) where the task runs;
//! it does not plan transfers (the executor API does) or record them (the dispatcher does).

use std::cell::RefCell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::record::TransferRecord;
use super::strategy;
use super::uri::Location;

/// A file the dispatcher put in the task's directory for a typed input, by URI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StagedInput {
    /// The input's URI (a file of the dispatcher's machine).
    pub uri: String,
    /// Where it is, relative to the task's directory.
    pub rel: String,
    /// Its BLAKE3, hex.
    pub blake3: String,
    /// Its size.
    pub size: u64,
}

/// A file the task made that the dispatcher brings home after it (a [`File::output`] of a
/// task away from the dispatcher, or a `stage_out` to a dispatcher path).
///
/// [`File::output`]: super::File::output
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fetch {
    /// Where it is, relative to the task's directory.
    pub rel: String,
    /// Where it goes on the dispatcher's machine (absolute).
    pub to: String,
    /// Its BLAKE3 where it was made, hex (what arrives is checked against it).
    pub blake3: String,
    /// Its size.
    pub size: u64,
    /// `stage_out` (named by the electron's options) or `output` (a returned `File`).
    pub why: String,
}

/// The files side of one running task.
#[derive(Debug, Default)]
pub struct Scope {
    /// The task's directory: where relative paths resolve (`None`: the current directory).
    pub dir: Option<PathBuf>,
    /// Where this attempt's downloads go when the task has no directory of its own.
    pub attempt_dir: Option<PathBuf>,
    /// For a task away from the dispatcher: the dispatcher's directory its files go to.
    pub home: Option<PathBuf>,
    /// For a task on an ssh host: that host as an ssh authority (`user@host:port`), so a
    /// [`File::new`](super::File::new) made there names it.
    pub here: Option<String>,
    /// Inputs the dispatcher staged.
    pub staged: Vec<StagedInput>,
    /// The electron's `files = [...]` transfers, resolved.
    pub planned: Vec<super::planned::Planned>,
    /// The attempt number.
    pub attempt: u32,
    /// What has been made readable here so far (URI and digest → path).
    pub(crate) cache: Vec<(String, PathBuf)>,
    /// Transfers made so far.
    pub records: Vec<TransferRecord>,
    /// Files for the dispatcher to bring home.
    pub fetch: Vec<Fetch>,
    /// The first transfer that failed, if one did (the task's error is then a transfer one).
    pub failed: Option<String>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

static USED: AtomicBool = AtomicBool::new(false);

/// Notes that this process uses files (tasks of a process that never does run without a
/// scope, at no cost).
pub(crate) fn note_used() {
    if !USED.load(Ordering::Relaxed) {
        USED.store(true, Ordering::Relaxed);
    }
}

/// Whether any file has been made or read in this process.
pub(crate) fn used() -> bool {
    USED.load(Ordering::Relaxed)
}

/// Runs `f` inside `scope`; returns what it returned and the scope as `f` left it.
pub fn enter<R>(scope: Scope, f: impl FnOnce() -> R) -> (R, Scope) {
    struct Restore(Option<Scope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            SCOPE.with(|s| *s.borrow_mut() = prev);
        }
    }
    let prev = SCOPE.with(|s| s.borrow_mut().replace(scope));
    let restore = Restore(prev);
    let r = f();
    let scope = SCOPE.with(|s| s.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (r, scope)
}

/// A future run inside a scope (entered around each poll); it yields the scope with the
/// output.
pub struct Scoped<F> {
    fut: Pin<Box<F>>,
    scope: Option<Scope>,
}

impl<F: Future> Scoped<F> {
    /// `fut` inside `scope`.
    pub fn new(scope: Scope, fut: F) -> Self {
        Scoped {
            fut: Box::pin(fut),
            scope: Some(scope),
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = (F::Output, Scope);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let scope = self.scope.take().unwrap_or_default();
        let (r, scope) = {
            let fut = self.fut.as_mut();
            enter(scope, || fut.poll(cx))
        };
        match r {
            Poll::Ready(v) => Poll::Ready((v, scope)),
            Poll::Pending => {
                self.scope = Some(scope);
                Poll::Pending
            }
        }
    }
}

/// Runs `f` on the current scope, if there is one.
pub(crate) fn with<R>(f: impl FnOnce(&mut Scope) -> R) -> Option<R> {
    SCOPE.with(|s| s.borrow_mut().as_mut().map(f))
}

/// The directory of the running task's own attempt, made on first use: relative paths of its
/// `stage_in`/`stage_out` options and of [`File::new`](super::File::new) /
/// [`File::output`](super::File::output) resolve against it. On the `ssh`, `slurm` and
/// `container` executors it is the attempt's work directory on the host, which is also the
/// task's current directory; on the `local` and `process` executors (tasks beside the
/// dispatcher) it is `<results>/<dispatch>/files/<node>-<attempt>` among the dispatch's
/// results, which a `process` task with `files = [...]` also has as its current directory
/// (the `local` executor runs tasks in this process, beside one another, and never changes
/// the current directory). Outside any task: the current directory.
pub fn task_dir() -> PathBuf {
    let own = with(|s| s.dir.clone().or_else(|| s.attempt_dir.clone())).flatten();
    match own {
        Some(d) => {
            let _ = std::fs::create_dir_all(&d);
            d
        }
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

/// Where the running task's downloads of typed inputs go.
fn downloads_dir() -> PathBuf {
    with(|s| {
        s.dir
            .as_ref()
            .map(|d| d.join("covalent-inputs"))
            .or_else(|| s.attempt_dir.as_ref().map(|d| d.join("inputs")))
    })
    .flatten()
    .unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "covalent-downloads-{}",
            // SAFETY: getuid(2) has no preconditions.
            unsafe { libc::getuid() }
        ))
    })
}

fn cache_key(uri: &str, blake3: Option<&str>) -> String {
    format!("{uri}#{}", blake3.unwrap_or(""))
}

/// Where a file of URI `uri` (known by `size` and `blake3`) is readable by the running task:
/// in place, staged by the dispatcher (checked on first use), or fetched here now (recorded).
pub(crate) fn materialise(
    loc: &Location,
    uri: &str,
    size: Option<u64>,
    blake3: Option<&str>,
) -> std::io::Result<PathBuf> {
    let key = cache_key(uri, blake3);
    if let Some(p) = with(|s| {
        s.cache
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| p.clone())
    })
    .flatten()
    {
        return Ok(p);
    }
    let away = with(|s| s.home.is_some()).unwrap_or(false);
    let here = with(|s| s.here.clone()).flatten();
    let path = match loc {
        Location::Local(p) if away => {
            // A file of the dispatcher's machine: staged into this task's directory.
            let staged = with(|s| {
                s.staged
                    .iter()
                    .find(|x| x.uri == uri && blake3.is_none_or(|b| b == x.blake3))
                    .cloned()
            })
            .flatten();
            let Some(st) = staged else {
                return Err(fail(
                    uri,
                    format!(
                        "{} is a file of the dispatching machine and was not staged for this task: pass it as an input of the electron (a File parameter), or name it in the electron's `files = [stage_in(...)]`",
                        p.display()
                    ),
                ));
            };
            let at = task_dir().join(&st.rel);
            match strategy::hash_file(&at) {
                Ok((n, h)) if n == st.size && h == st.blake3 => at,
                Ok((n, h)) => {
                    return Err(fail(
                        uri,
                        format!(
                            "the copy staged at {} does not match the file sent ({n} bytes, BLAKE3 {h}; {} bytes, {} sent): garbled on its way",
                            at.display(),
                            st.size,
                            st.blake3
                        ),
                    ));
                }
                Err(e) => {
                    return Err(fail(
                        uri,
                        format!("the copy staged at {} cannot be read: {e}", at.display()),
                    ));
                }
            }
        }
        Location::Local(p) => {
            // This machine's file: read where it is.
            let meta = std::fs::metadata(p)
                .map_err(|e| fail(uri, format!("{} cannot be read: {e}", p.display())))?;
            if let Some(n) = size
                && meta.len() != n
            {
                return Err(fail(
                    uri,
                    format!(
                        "{} has {} bytes, {n} when it was named: it changed since",
                        p.display(),
                        meta.len()
                    ),
                ));
            }
            if let Some(want) = blake3 {
                // Read in place, so checked in place: the content it was named with, or none.
                let (_, have) = strategy::hash_file(p)
                    .map_err(|e| fail(uri, format!("{} cannot be read: {e}", p.display())))?;
                if have != want {
                    return Err(fail(
                        uri,
                        format!(
                            "checksum mismatch: {} has BLAKE3 {have}, it was named with {want} (it changed since)",
                            p.display()
                        ),
                    ));
                }
            }
            p.clone()
        }
        Location::Ssh(sp)
            if here
                .as_deref()
                .is_some_and(|h| same_host(h, &sp.authority())) =>
        {
            // A file of the host this task runs on.
            PathBuf::from(&sp.path)
        }
        _ => {
            let dir = downloads_dir();
            let n = with(|s| s.cache.len()).unwrap_or(0);
            let dest = dir.join(format!("{n}-{}", loc.file_name()));
            let t0 = Instant::now();
            let got = strategy::fetch(loc, &dest, Some((size, blake3)));
            let rec = |m: Option<&strategy::Moved>, err: Option<String>| TransferRecord {
                attempt: with(|s| s.attempt).unwrap_or(0),
                direction: "in".into(),
                source: uri.to_string(),
                destination: format!("file://{}", dest.display()),
                strategy: m
                    .map(|m| m.strategy)
                    .unwrap_or(strategy_of(loc))
                    .to_string(),
                via: "task".into(),
                bytes: m.map(|m| m.bytes).unwrap_or(0),
                seconds: t0.elapsed().as_secs_f64(),
                blake3: m.map(|m| m.blake3.clone()),
                error: err,
            };
            match got {
                Ok(m) => {
                    let r = rec(Some(&m), None);
                    with(|s| s.records.push(r));
                    dest
                }
                Err(e) => {
                    let r = rec(None, Some(e.clone()));
                    with(|s| s.records.push(r));
                    return Err(fail(uri, e));
                }
            }
        }
    };
    with(|s| s.cache.push((key, path.clone())));
    Ok(path)
}

pub(crate) fn strategy_of(loc: &Location) -> &'static str {
    match loc {
        Location::Local(_) => "copy",
        Location::Ssh(_) => "rsync",
        Location::Http(_) => "http",
    }
}

/// The first transfer of the running task that failed, if one did.
pub(crate) fn failed_transfer() -> Option<String> {
    with(|s| s.failed.clone()).flatten()
}

/// Whether two ssh authorities name the same login (a missing port is 22, a missing user
/// matches any).
fn same_host(a: &str, b: &str) -> bool {
    let split = |s: &str| {
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r.to_string()),
            None => (None, s.to_string()),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().unwrap_or(22)),
            None => (rest, 22),
        };
        (user, host, port)
    };
    let (ua, ha, pa) = split(a);
    let (ub, hb, pb) = split(b);
    ha == hb && pa == pb && (ua.is_none() || ub.is_none() || ua == ub)
}

/// A transfer's failure, noted on the scope (so the task's error is a transfer error).
pub(crate) fn fail(uri: &str, msg: String) -> std::io::Error {
    let text = format!("transfer of {uri}: {msg}");
    with(|s| {
        if s.failed.is_none() {
            s.failed = Some(text.clone());
        }
    });
    std::io::Error::other(text)
}

/// Registers a file the running task made for the dispatcher to bring home; returns its URI
/// there, or `None` when the task runs beside the dispatcher (the file stays where it is).
pub(crate) fn bring_home(rel: &str, blake3: &str, size: u64, why: &str) -> Option<String> {
    with(|s| {
        let home = s.home.clone()?;
        let to = home.join(rel);
        let to = to.display().to_string();
        if !s.fetch.iter().any(|f| f.rel == rel) {
            s.fetch.push(Fetch {
                rel: rel.to_string(),
                to: to.clone(),
                blake3: blake3.to_string(),
                size,
                why: why.to_string(),
            });
        }
        Some(format!("file://{to}"))
    })
    .flatten()
}

/// The path of `p` relative to the task's directory, when it lies inside it.
pub(crate) fn relative_to_task(p: &Path) -> Option<String> {
    let dir = task_dir();
    p.strip_prefix(&dir)
        .ok()
        .map(|r| r.display().to_string())
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_login_and_port() {
        assert!(same_host("me@h:22", "h"));
        assert!(same_host("me@h:2222", "me@h:2222"));
        assert!(!same_host("me@h:2222", "me@h"));
        assert!(!same_host("me@h", "you@h"));
        assert!(!same_host("h", "g"));
    }
}
