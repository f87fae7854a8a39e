//! The store: every dispatch recorded in an embedded SQLite database (WAL mode, versioned
//! schema), readable by other processes while dispatches run.
//!
//! The dispatcher never waits for the database: a dispatch's row is written when it starts
//! (so its id is durable when `dispatch` returns; `dispatch_sync`'s goes with the first batch),
//! then a writer thread per store (the journal) records node states in batches and the final
//! state when the dispatch ends; a dispatch that ended before its first batch is written whole
//! by its waiter, in one commit.
//! Other processes read records ([`Store::get`], [`Store::list`]), wait for them to end, and
//! ask running dispatches to cancel through the `cancel_requests` table, which the owning
//! process polls. A dispatch whose process died is marked INTERRUPTED when anybody looks.
//!
//! This module owns SQL and the file; the shape of a record is `record.rs`.

mod batch;
mod connect;
pub(crate) mod encode;
mod error;
pub(crate) mod journal;
mod read;
pub(crate) mod resume;
mod schema;
mod summary;
pub(crate) mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use uuid::Uuid;

pub use crate::record::{AttemptRecord, DispatchRecord, NodeRecord, SublatticeRecord, ValueFile};
use crate::status::Status;
use crate::time::micros;
pub use error::StoreError;
pub use resume::{Origin, build_of};
pub use summary::{GraphSummary, GroupEdge, NodeGroup, NodeLinks, SUMMARY_BANDS};
pub use values::INLINE_LIMIT;

/// `text` for a `LIKE ... ESCAPE '\'` pattern that matches it literally.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A time from microseconds since the Unix epoch.
pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from(UNIX_EPOCH + Duration::from_micros(us.max(0) as u64))
}

/// This host's name.
pub(crate) fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The start time of process `pid` in clock ticks since boot (Linux), to tell a live process
/// from a new one that reused its pid.
pub(crate) fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A summary row of `covalent list`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DispatchSummary {
    /// The dispatch id.
    pub id: Uuid,
    /// Lattice name.
    pub lattice: String,
    /// Status.
    pub status: Status,
    /// Tasks completed or reused (internal nodes excluded).
    pub done: usize,
    /// Tasks in the top-level graph (internal nodes excluded).
    pub total: usize,
    /// When it started.
    pub start_time: DateTime<Utc>,
    /// When it ended.
    pub end_time: Option<DateTime<Utc>>,
}

impl DispatchSummary {
    /// Runtime so far (to the end, or to now while running).
    pub fn runtime(&self) -> Duration {
        let end = self.end_time.unwrap_or_else(Utc::now);
        (end - self.start_time).to_std().unwrap_or_default()
    }
}

/// Filters of [`Store::list`].
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Lattice name or dispatch id containing this text.
    pub search: Option<String>,
    /// At most this many (newest first).
    pub limit: Option<usize>,
    /// Skip this many.
    pub offset: usize,
}

/// An open store.
pub struct Store {
    path: PathBuf,
    /// The file opened (device and inode): a path now naming another file is opened anew.
    file: Option<(u64, u64)>,
    conn: Mutex<Connection>,
    journal: journal::Journal,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

/// SQLite's message, with what to do where it is the user's to fix.
fn describe(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ReadOnly) => format!(
            "{e}: the store file or its directory is read-only here (permissions, or a read-only mount); make both writable, or set COVALENT_HOME (or `[sdk] data_dir`) to a writable directory. Reading it still works"
        ),
        Some(rusqlite::ErrorCode::DiskFull) => format!(
            "{e}: the disk holding the store is full; free space there, or set COVALENT_HOME to another disk"
        ),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) | Some(rusqlite::ErrorCode::NotADatabase) => {
            format!(
                "{e}: the file is damaged (truncated or overwritten); move it aside to start a new store, or restore it from a copy"
            )
        }
        _ => e.to_string(),
    }
}

/// The device and inode of the file at `path`.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

static OPEN: LazyLock<Mutex<HashMap<PathBuf, Arc<Store>>>> = LazyLock::new(Default::default);

/// The row of a starting dispatch, written with its first batch (see [`journal`]).
pub(crate) struct NewDispatch {
    pub id: String,
    pub lattice: String,
    pub lattice_path: &'static str,
    pub inputs: String,
    /// References of the inputs kept in value files (`[[name, {"h", "n"}], ...]`), if any.
    pub input_files: Option<String>,
    pub task_count: usize,
    pub results_dir: String,
    pub reused_from: Option<String>,
    pub created_at: i64,
    pub cwd: Option<String>,
}

impl NewDispatch {
    /// The row of dispatch `id` starting now.
    pub(crate) fn new(
        id: Uuid,
        (lattice, lattice_path): (&str, &'static str),
        inputs: &[(String, serde_json::Value)],
        task_count: usize,
        results_dir: &Path,
        reused_from: Option<Uuid>,
    ) -> Self {
        let (inputs, input_files) = encode_inputs(inputs, results_dir);
        NewDispatch {
            id: id.to_string(),
            lattice: lattice.to_string(),
            lattice_path,
            inputs,
            input_files,
            task_count,
            results_dir: results_dir.to_string_lossy().into_owned(),
            reused_from: reused_from.map(|u| u.to_string()),
            created_at: micros(SystemTime::now()),
            cwd: std::env::current_dir()
                .ok()
                .map(|d| d.display().to_string()),
        }
    }

    /// Inserts it, running.
    pub(crate) fn insert(&self, c: &Connection) -> rusqlite::Result<()> {
        self.insert_as(c, None)
    }

    /// Inserts it as it ended, with its graph and node log (a dispatch written in one commit).
    pub(crate) fn insert_ended(&self, c: &Connection, end: &Ended<'_>) -> rusqlite::Result<()> {
        self.insert_as(c, Some(end))
    }

    fn insert_as(&self, c: &Connection, end: Option<&Ended<'_>>) -> rusqlite::Result<()> {
        let me = this_process();
        let (program, build) = resume::this_program();
        c.prepare_cached(
            "INSERT INTO dispatches (id, lattice, status, inputs, created_at, task_count,
                 results_dir, pid, pid_start, host, heartbeat_at, reused_from, program,
                 build, lattice_path, cwd, output, error, ended_at, done_count, graph, nodes,
                 output_file, input_files)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?5, ?11, ?12, ?13, ?14, ?15,
                 ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
        )?
        .execute(params![
            self.id,
            self.lattice,
            end.map_or("RUNNING", |e| e.status.as_str()),
            self.inputs,
            self.created_at,
            self.task_count as i64,
            self.results_dir,
            me.pid,
            me.start,
            me.host,
            self.reused_from,
            program,
            build,
            Some(self.lattice_path).filter(|p| !p.is_empty()),
            self.cwd,
            end.and_then(|e| e.output.as_deref()),
            end.and_then(|e| e.error),
            end.map(|e| e.ended_at),
            end.map_or(0, |e| e.done),
            end.map(|e| e.graph.as_str()),
            end.and_then(|e| e.nodes),
            end.and_then(|e| e.output_file.as_deref()),
            self.input_files,
        ])
        .map(|_| ())
    }
}

/// A dispatch's inputs as its row keeps them: `[[name, value], ...]`, an input whose JSON
/// passes [`INLINE_LIMIT`] written to a value file of the dispatch (results dir `results`) and
/// `null` in its place, with its reference in the second text (`[[name, {"h", "n"}], ...]`).
fn encode_inputs(
    inputs: &[(String, serde_json::Value)],
    results: &Path,
) -> (String, Option<String>) {
    let mut text = Vec::with_capacity(64);
    let mut files: Vec<(&str, values::Stored)> = Vec::new();
    text.push(b'[');
    for (k, (name, value)) in inputs.iter().enumerate() {
        if k > 0 {
            text.push(b',');
        }
        text.push(b'[');
        let _ = serde_json::to_writer(&mut text, name);
        text.push(b',');
        if let Some(stored) = values::write_json_value(value, &mut text, results) {
            text.extend_from_slice(b"null");
            files.push((name, stored));
        }
        text.push(b']');
    }
    text.push(b']');
    let files = (!files.is_empty()).then(|| serde_json::to_string(&files).unwrap_or_default());
    (
        String::from_utf8(text).unwrap_or_else(|_| "[]".into()),
        files,
    )
}

/// The final state of a dispatch written whole ([`NewDispatch::insert_ended`]).
pub(crate) struct Ended<'a> {
    pub status: Status,
    pub output: Option<String>,
    /// The reference of the file holding the output, when it is too large for the row.
    pub output_file: Option<String>,
    pub error: Option<&'a str>,
    pub ended_at: i64,
    /// Tasks completed or reused.
    pub done: i64,
    /// The graph's JSON (else in `graphs`).
    pub graph: String,
    /// The node log's one batch (else in `node_log`).
    pub nodes: Option<&'a str>,
}

/// When the process exits, the write-ahead log of every store it wrote to is moved into the
/// database and truncated to nothing (SQLite does this when the last connection closes, but a
/// process exits without closing the stores it keeps open): a program that dispatched and
/// ended leaves the database file alone. It gives up after a fraction of a second (this
/// process's writer thread may be ending a batch or a checkpoint): a store another process is
/// using at that moment is left to its next checkpoint, and a process that only read
/// (`covalent show`) changes nothing.
extern "C" fn checkpoint_at_exit() {
    let Ok(open) = OPEN.try_lock() else {
        return;
    };
    for store in open.values() {
        if let Ok(c) = store.conn.try_lock()
            && (c.total_changes() > 0 || store.journal.wrote())
        {
            // The writer thread may be in a checkpoint of its own (a second one is refused at
            // once, not waited for): tried again for a while.
            let _ = c.busy_timeout(Duration::from_millis(50));
            for _ in 0..40 {
                let busy = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                });
                if !matches!(busy, Ok(1) | Err(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// A [`DispatchSummary`] from `SELECT id, lattice, status, task_count, created_at, ended_at,
/// done_count`.
fn summary_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<DispatchSummary> {
    Ok(DispatchSummary {
        id: Uuid::parse_str(&r.get::<_, String>(0)?).unwrap_or_default(),
        lattice: r.get(1)?,
        status: r.get::<_, String>(2)?.parse().unwrap_or(Status::Running),
        total: r.get::<_, i64>(3)? as usize,
        start_time: from_micros(r.get(4)?),
        end_time: r.get::<_, Option<i64>>(5)?.map(from_micros),
        done: r.get::<_, i64>(6)? as usize,
    })
}

/// This process as dispatches record it (read once: /proc is not free).
struct ThisProcess {
    pid: u32,
    start: Option<i64>,
    host: String,
}

fn this_process() -> &'static ThisProcess {
    static THIS: std::sync::OnceLock<ThisProcess> = std::sync::OnceLock::new();
    THIS.get_or_init(|| {
        let pid = std::process::id();
        ThisProcess {
            pid,
            start: process_start(pid),
            host: host(),
        }
    })
}

impl Store {
    /// Opens (creating if needed) the store at `path`; one instance per file per process.
    pub fn open(path: &Path) -> Result<Arc<Store>, StoreError> {
        let key = path.to_path_buf();
        let mut open = OPEN.lock().unwrap();
        if let Some(s) = open.get(&key) {
            // The same file still: share it. Replaced (deleted and re-created, or another file
            // moved there): this process's earlier handles keep reading the old one, and this
            // open looks at the new one as any first open does.
            if s.file.is_some() && s.file == file_id(path) {
                return Ok(s.clone());
            }
            open.remove(&key);
        }
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        AT_EXIT.call_once(|| {
            // SAFETY: registers a plain `extern "C" fn` taking nothing; it only try-locks and
            // asks SQLite for a checkpoint, which is safe at any point of the exit.
            unsafe {
                libc::atexit(checkpoint_at_exit);
            }
        });
        let conn = connect::connect(path)?;
        let writer = connect::connect(path)?;
        let store = Arc::new(Store {
            path: key.clone(),
            file: file_id(path),
            conn: Mutex::new(conn),
            journal: journal::Journal::start(writer, path.to_path_buf()),
        });
        open.insert(key, store.clone());
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file at [`Store::path`] is still the one this store opened (not deleted,
    /// re-created or replaced by another file since): a long-lived reader (the UI) opens the
    /// path anew when it is not.
    pub fn is_current(&self) -> bool {
        self.file.is_some() && self.file == file_id(&self.path)
    }

    pub(crate) fn journal(&self) -> &journal::Journal {
        &self.journal
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            reason: describe(&e),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, StoreError> {
        let conn = self.conn.lock().unwrap();
        f(&conn).map_err(|e| self.err(e))
    }

    /// Writes the row of a starting dispatch now (the id is durable on return).
    pub(crate) fn insert_dispatch(&self, row: &NewDispatch) -> Result<(), StoreError> {
        self.with(|c| row.insert(c))
    }

    /// Resolves a full id or a unique prefix of one.
    pub fn resolve(&self, id: &str) -> Result<Uuid, StoreError> {
        let id = id.trim();
        if let Ok(u) = Uuid::parse_str(id) {
            return Ok(u);
        }
        let unknown = || StoreError::UnknownDispatch {
            id: id.to_string(),
            path: self.path.clone(),
        };
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(unknown());
        }
        let matches: Vec<String> = self.with(|c| {
            let mut st = c.prepare("SELECT id FROM dispatches WHERE id LIKE ?1 || '%' LIMIT 5")?;
            let rows = st.query_map([id.to_lowercase()], |r| r.get::<_, String>(0))?;
            rows.collect()
        })?;
        match matches.len() {
            0 => Err(unknown()),
            1 => Uuid::parse_str(&matches[0]).map_err(|_| unknown()),
            _ => Err(StoreError::Ambiguous {
                prefix: id.to_string(),
                matches,
            }),
        }
    }

    /// Marks dispatches whose process died as INTERRUPTED (their running nodes then read as
    /// INTERRUPTED too).
    pub fn sweep_interrupted(&self) -> Result<usize, StoreError> {
        let me = std::process::id();
        let here = this_process().host.clone();
        let now = micros(SystemTime::now());
        let stale = journal::HEARTBEAT.as_micros() as i64 * 10;
        let running: Vec<(String, u32, Option<i64>, String, i64)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, pid, pid_start, host, heartbeat_at FROM dispatches WHERE status = 'RUNNING'",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        })?;
        let mut n = 0;
        for (id, pid, pid_start, h, heartbeat) in running {
            let dead = if h == here {
                if pid == me {
                    !self.journal.is_active(&id)
                } else {
                    process_start(pid).is_none() || process_start(pid) != pid_start
                }
            } else {
                now - heartbeat > stale
            };
            if dead {
                n += self.with(|c| {
                    let changed = c.execute(
                        "UPDATE dispatches SET status = 'INTERRUPTED', ended_at = heartbeat_at,
                             error = 'The process running this dispatch stopped before it ended'
                         WHERE id = ?1 AND status = 'RUNNING'",
                        [&id],
                    )?;
                    Ok(changed)
                })?;
            }
        }
        Ok(n)
    }

    /// Dispatches, newest first.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<DispatchSummary>, StoreError> {
        self.sweep_interrupted()?;
        let search = filter.search.clone().unwrap_or_default();
        let status = filter
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        // Past i64::MAX is "all" (a cast would wrap to -1, which SQLite reads as no limit or
        // no offset).
        let limit = filter
            .limit
            .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
            .unwrap_or(-1);
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        // The search is plain text: `%`, `_` and `\` match themselves.
        let search = like_escape(&search);
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT d.id, d.lattice, d.status, d.task_count, d.created_at, d.ended_at, d.done_count
                 FROM dispatches d
                 WHERE (?1 = '' OR d.status = ?1)
                   AND (?2 = '' OR d.lattice LIKE '%' || ?2 || '%' ESCAPE '\\'
                        OR d.id LIKE ?2 || '%' ESCAPE '\\')
                 ORDER BY d.created_at DESC, d.id DESC
                 LIMIT ?3 OFFSET ?4",
            )?;
            let rows = st.query_map(params![status, search, limit, offset], summary_of)?;
            rows.collect()
        })
    }

    /// One dispatch as [`Store::list`] shows it (task counts included), from its row alone.
    pub fn summary(&self, id: Uuid) -> Result<DispatchSummary, StoreError> {
        self.sweep_interrupted()?;
        self.with(|c| {
            c.query_row(
                "SELECT id, lattice, status, task_count, created_at, ended_at, done_count
                 FROM dispatches WHERE id = ?1",
                [id.to_string()],
                summary_of,
            )
            .optional()
        })?
        .ok_or_else(|| StoreError::UnknownDispatch {
            id: id.to_string(),
            path: self.path.clone(),
        })
    }

    /// Counts of dispatches per status.
    pub fn counts(&self) -> Result<Vec<(Status, usize)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT status, count(*) FROM dispatches GROUP BY status")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?.parse().unwrap_or(Status::Running),
                    r.get::<_, i64>(1)? as usize,
                ))
            })?;
            rows.collect()
        })
    }

    /// Asks the process running dispatch `id` to cancel it (or only `nodes`). Returns the
    /// dispatch's status when asked; nothing happens to a dispatch that already ended.
    pub fn request_cancel(&self, id: Uuid, nodes: &[usize]) -> Result<Status, StoreError> {
        let status = self.status(id)?;
        if status.is_terminal() {
            return Ok(status);
        }
        let now = micros(SystemTime::now());
        self.with(|c| {
            if nodes.is_empty() {
                c.execute(
                    "INSERT INTO cancel_requests (dispatch_id, node_id, created_at) VALUES (?1, NULL, ?2)",
                    params![id.to_string(), now],
                )?;
            }
            for n in nodes {
                c.execute(
                    "INSERT INTO cancel_requests (dispatch_id, node_id, created_at) VALUES (?1, ?2, ?3)",
                    params![id.to_string(), *n as i64, now],
                )?;
            }
            Ok(())
        })?;
        Ok(status)
    }

    /// A dispatch's status.
    pub fn status(&self, id: Uuid) -> Result<Status, StoreError> {
        self.sweep_interrupted()?;
        let s: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT status FROM dispatches WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()
        })?;
        s.map(|s| s.parse().unwrap_or(Status::Running))
            .ok_or_else(|| StoreError::UnknownDispatch {
                id: id.to_string(),
                path: self.path.clone(),
            })
    }

    /// Waits until dispatch `id` ends (or `timeout` passes) and returns its record. Changes made
    /// by other processes are noticed within a few tens of milliseconds.
    pub fn wait(&self, id: Uuid, timeout: Option<Duration>) -> Result<DispatchRecord, StoreError> {
        self.wait_status(id, timeout)?;
        self.get(id)
    }

    /// Waits as [`Store::wait`] does and returns the status it ended with (or has at the
    /// timeout), reading nothing else.
    pub fn wait_status(&self, id: Uuid, timeout: Option<Duration>) -> Result<Status, StoreError> {
        let start = std::time::Instant::now();
        let mut last_sweep = start;
        loop {
            let st = self.status(id)?;
            if st.is_terminal() || timeout.is_some_and(|t| start.elapsed() >= t) {
                return Ok(st);
            }
            let version = self.data_version()?;
            loop {
                std::thread::sleep(Duration::from_millis(20));
                if self.data_version()? != version
                    || last_sweep.elapsed() > Duration::from_secs(1)
                    || timeout.is_some_and(|t| start.elapsed() >= t)
                {
                    last_sweep = std::time::Instant::now();
                    break;
                }
            }
        }
    }

    /// A number that changes whenever another connection (another process, or this process's
    /// writer) commits to the store: poll it to notice changes cheaply.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.with(|c| c.query_row("PRAGMA data_version", [], |r| r.get(0)))
    }

    /// Gives the space of deleted dispatches back to the file system: the write-ahead log is
    /// checkpointed and truncated, the database rebuilt (`VACUUM`). Returns the bytes on disk
    /// (database and log) before and after. Other processes may keep reading meanwhile; one
    /// that writes makes this wait (up to the busy timeout) or fail with SQLite's reason.
    pub fn vacuum(&self) -> Result<(u64, u64), StoreError> {
        let on_disk = || {
            [self.path.clone(), self.path.with_extension("db-wal")]
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum::<u64>()
        };
        let before = on_disk();
        // A statement of a dispatch that just ended may still hold a table for a moment
        // (`database table is locked`): asked again, for up to five seconds.
        let mut tries = 0;
        loop {
            let r = self.with(|c| {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                c.execute_batch("VACUUM")?;
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            });
            match r {
                Err(e) if tries < 250 && e.to_string().contains("locked") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => {
                    r?;
                    break;
                }
            }
        }
        Ok((before, on_disk()))
    }

    /// Deletes ended dispatches, their rows and then their results dirs (value files, task
    /// dirs): those older than `older_than`, or every ended one with `all`. Running dispatches
    /// are never deleted. Returns how many went.
    pub fn purge(&self, older_than: Option<Duration>, all: bool) -> Result<usize, StoreError> {
        self.sweep_interrupted()?;
        let cutoff = match (older_than, all) {
            (_, true) => i64::MAX,
            (Some(d), false) => micros(SystemTime::now())
                .saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            (None, false) => return Ok(0),
        };
        let mut conn = self.conn.lock().unwrap();
        // IMMEDIATE: it reads, then writes; a deferred transaction would fail at once (not
        // wait) if another process committed in between.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let gone = (|| {
            let ids: Vec<(String, Option<String>)> = {
                let mut st = tx.prepare(
                    "SELECT id, results_dir FROM dispatches
                     WHERE status NOT IN ('RUNNING') AND created_at < ?1",
                )?;
                let rows = st.query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for (id, _) in &ids {
                for table in ["node_log", "sublattices", "cancel_requests", "graphs"] {
                    tx.execute(&format!("DELETE FROM {table} WHERE dispatch_id = ?1"), [id])?;
                }
                tx.execute("DELETE FROM dispatches WHERE id = ?1", [id])?;
            }
            Ok(ids)
        })()
        .map_err(|e: rusqlite::Error| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        // Then their files (value files, task dirs): a directory named after its dispatch
        // only, so a results dir recorded wrongly never takes anything else along.
        for (id, dir) in &gone {
            if let Some(dir) = dir.as_deref().map(Path::new)
                && dir.file_name().is_some_and(|n| n == id.as_str())
                && let Err(e) = std::fs::remove_dir_all(dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                eprintln!(
                    "covalent: warning: dispatch {id} is purged, but not its files in {}: {e}",
                    dir.display()
                );
            }
        }
        Ok(gone.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_refused_as_read_only_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("covalent.db");
        drop(Store::open(&path).unwrap());
        // What a store on a read-only mount, or of another user, gives: SQLite's own refusal.
        let ro =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let e = ro.execute("DELETE FROM dispatches", []).unwrap_err();
        let msg = describe(&e);
        assert!(
            msg.starts_with("attempt to write a readonly database"),
            "{msg}"
        );
        assert!(msg.contains("make both writable"), "{msg}");
        assert!(msg.contains("COVALENT_HOME"), "{msg}");
        assert!(msg.contains("Reading it still works"), "{msg}");
    }
}
