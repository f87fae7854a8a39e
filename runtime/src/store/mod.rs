//! The store: every dispatch recorded in an embedded SQLite database (WAL mode, versioned
//! schema), readable by other processes while dispatches run.
//!
//! The dispatcher never waits for the database: a dispatch's row is written once when it
//! starts (so its id is durable when `dispatch` returns), then a writer thread per store
//! (the journal) records node states in batches and the final state when the dispatch ends.
//! Other processes read records ([`Store::get`], [`Store::list`]), wait for them to end, and
//! ask running dispatches to cancel through the `cancel_requests` table, which the owning
//! process polls. A dispatch whose process died is marked INTERRUPTED when anybody looks.
//!
//! This module owns SQL and the file; the shape of a record is `record.rs`.

mod batch;
pub(crate) mod encode;
mod error;
pub(crate) mod journal;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;
use uuid::Uuid;

pub use crate::record::{AttemptRecord, DispatchRecord, NodeRecord, SublatticeRecord};
use crate::status::Status;
use crate::time::micros;
use encode::GraphRec;
pub use error::StoreError;

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
    conn: Mutex<Connection>,
    journal: journal::Journal,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

static OPEN: LazyLock<Mutex<HashMap<PathBuf, Arc<Store>>>> = LazyLock::new(Default::default);

impl Store {
    /// Opens (creating if needed) the store at `path`; one instance per file per process.
    pub fn open(path: &Path) -> Result<Arc<Store>, StoreError> {
        let key = path.to_path_buf();
        let mut open = OPEN.lock().unwrap();
        if let Some(s) = open.get(&key) {
            return Ok(s.clone());
        }
        let conn = connect(path)?;
        let writer = connect(path)?;
        let store = Arc::new(Store {
            path: key.clone(),
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

    pub(crate) fn journal(&self) -> &journal::Journal {
        &self.journal
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, StoreError> {
        let conn = self.conn.lock().unwrap();
        f(&conn).map_err(|e| self.err(e))
    }

    /// Writes the row of a starting dispatch (synchronously: the id is durable on return).
    pub(crate) fn insert_dispatch(
        &self,
        id: Uuid,
        lattice: &str,
        inputs: &[(String, serde_json::Value)],
        task_count: usize,
        results_dir: &Path,
        reused_from: Option<Uuid>,
    ) -> Result<(), StoreError> {
        let now = micros(SystemTime::now());
        let pid = std::process::id();
        self.with(|c| {
            c.execute(
                "INSERT INTO dispatches (id, lattice, status, inputs, created_at, task_count,
                     results_dir, pid, pid_start, host, heartbeat_at, reused_from)
                 VALUES (?1, ?2, 'RUNNING', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?4, ?10)",
                params![
                    id.to_string(),
                    lattice,
                    serde_json::to_string(inputs).unwrap_or_else(|_| "[]".into()),
                    now,
                    task_count as i64,
                    results_dir.to_string_lossy(),
                    pid,
                    process_start(pid),
                    host(),
                    reused_from.map(|u| u.to_string()),
                ],
            )
            .map(|_| ())
        })
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
        let here = host();
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

    /// The record of a dispatch.
    pub fn get(&self, id: Uuid) -> Result<DispatchRecord, StoreError> {
        self.sweep_interrupted()?;
        let key = id.to_string();
        type Row = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = self.with(|c| {
            c.query_row(
                "SELECT d.lattice, d.status, d.inputs, d.output, d.error, d.created_at, d.ended_at,
                        g.graph, d.results_dir
                 FROM dispatches d LEFT JOIN graphs g ON g.dispatch_id = d.id WHERE d.id = ?1",
                [&key],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((lattice, status, inputs, output, error, created, ended, graph, results_dir)) =
            row
        else {
            return Err(StoreError::UnknownDispatch {
                id: key,
                path: self.path.clone(),
            });
        };
        let status: Status = status.parse().unwrap_or(Status::Running);
        let graph: GraphRec = graph
            .and_then(|g| serde_json::from_str(&g).ok())
            .unwrap_or_default();
        let rows = self.node_rows(&key)?;
        let subs = self.sublattice_rows(&key)?;
        let nodes = assemble(&graph, "", &rows, &subs, status == Status::Interrupted);
        Ok(DispatchRecord {
            id,
            lattice,
            status,
            inputs: serde_json::from_str(&inputs).unwrap_or_default(),
            output: output.and_then(|o| serde_json::from_str(&o).ok()),
            error,
            start_time: Some(from_micros(created)),
            end_time: ended.map(from_micros),
            results_dir: results_dir.map(PathBuf::from),
            nodes,
        })
    }

    /// The latest logged state of every node of a dispatch, by `(path, node id)`.
    fn node_rows(&self, id: &str) -> Result<HashMap<(String, usize), NodeRow>, StoreError> {
        let batches: Vec<(String, String)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT path, entries FROM node_log WHERE dispatch_id = ?1 ORDER BY seq",
            )?;
            let rows = st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        let mut out = HashMap::new();
        for (path, entries) in batches {
            let entries: Vec<serde_json::Value> =
                serde_json::from_str(&entries).map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    reason: format!("the node log of dispatch {id} is damaged: {e}"),
                })?;
            for e in entries.into_iter().filter_map(NodeRow::parse) {
                out.insert((path.clone(), e.n), e);
            }
        }
        Ok(out)
    }

    fn sublattice_rows(
        &self,
        id: &str,
    ) -> Result<HashMap<String, (String, String, GraphRec)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT path, lattice, status, graph FROM sublattices WHERE dispatch_id = ?1",
            )?;
            let rows = st.query_map([id], |r| {
                let graph: Option<String> = r.get(3)?;
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        graph
                            .and_then(|g| serde_json::from_str(&g).ok())
                            .unwrap_or_default(),
                    ),
                ))
            })?;
            rows.collect()
        })
    }

    /// Stored outputs of a dispatch's completed top-level nodes, by fingerprint (for reuse).
    pub(crate) fn reusable(
        &self,
        id: Uuid,
    ) -> Result<HashMap<[u8; 16], serde_json::Value>, StoreError> {
        let key = id.to_string();
        let graph: Option<String> = self
            .with(|c| {
                c.query_row(
                    "SELECT g.graph FROM dispatches d LEFT JOIN graphs g ON g.dispatch_id = d.id
                     WHERE d.id = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()
            })?
            .ok_or_else(|| StoreError::UnknownDispatch {
                id: key.clone(),
                path: self.path.clone(),
            })?;
        let graph: GraphRec = graph
            .and_then(|g| serde_json::from_str(&g).ok())
            .unwrap_or_default();
        let fps = graph.fingerprints();
        let rows = self.node_rows(&key)?;
        let mut out = HashMap::new();
        for ((path, i), row) in rows {
            if !path.is_empty() || i >= fps.len() {
                continue;
            }
            if matches!(row.s, Status::Completed | Status::Reused)
                && let Some(v) = row.o
            {
                out.insert(fps[i], v);
            }
        }
        Ok(out)
    }

    /// Dispatches, newest first.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<DispatchSummary>, StoreError> {
        self.sweep_interrupted()?;
        let search = filter.search.clone().unwrap_or_default();
        let status = filter
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let limit = filter.limit.map(|l| l as i64).unwrap_or(-1);
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT d.id, d.lattice, d.status, d.task_count, d.created_at, d.ended_at, d.done_count
                 FROM dispatches d
                 WHERE (?1 = '' OR d.status = ?1)
                   AND (?2 = '' OR d.lattice LIKE '%' || ?2 || '%' OR d.id LIKE ?2 || '%')
                 ORDER BY d.created_at DESC, d.id DESC
                 LIMIT ?3 OFFSET ?4",
            )?;
            let rows = st.query_map(params![status, search, limit, filter.offset as i64], |r| {
                Ok(DispatchSummary {
                    id: Uuid::parse_str(&r.get::<_, String>(0)?).unwrap_or_default(),
                    lattice: r.get(1)?,
                    status: r.get::<_, String>(2)?.parse().unwrap_or(Status::Running),
                    total: r.get::<_, i64>(3)? as usize,
                    start_time: from_micros(r.get(4)?),
                    end_time: r.get::<_, Option<i64>>(5)?.map(from_micros),
                    done: r.get::<_, i64>(6)? as usize,
                })
            })?;
            rows.collect()
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
        let start = std::time::Instant::now();
        let mut last_sweep = start;
        loop {
            let st = self.status(id)?;
            if st.is_terminal() || timeout.is_some_and(|t| start.elapsed() >= t) {
                return self.get(id);
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

    /// Deletes ended dispatches: those older than `older_than`, or every ended one with `all`.
    /// Running dispatches are never deleted. Returns how many went.
    pub fn purge(&self, older_than: Option<Duration>, all: bool) -> Result<usize, StoreError> {
        self.sweep_interrupted()?;
        let cutoff = match (older_than, all) {
            (_, true) => i64::MAX,
            (Some(d), false) => micros(SystemTime::now())
                .saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            (None, false) => return Ok(0),
        };
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let n = (|| {
            let ids: Vec<String> = {
                let mut st = tx.prepare(
                    "SELECT id FROM dispatches WHERE status NOT IN ('RUNNING') AND created_at < ?1",
                )?;
                let rows = st.query_map([cutoff], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for id in &ids {
                for table in ["node_log", "sublattices", "cancel_requests", "graphs"] {
                    tx.execute(&format!("DELETE FROM {table} WHERE dispatch_id = ?1"), [id])?;
                }
                tx.execute("DELETE FROM dispatches WHERE id = ?1", [id])?;
            }
            Ok(ids.len())
        })()
        .map_err(|e: rusqlite::Error| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }
}

/// One entry of the node log: `[id, status, start, end, output, {extras}]`, times in µs from
/// the run's start (`GraphRec::t0`), extras (`e` error, `out`/`err` streams, `t` attempts,
/// `j` job handle, `x` executor) only when present.
#[derive(Default)]
struct NodeRow {
    n: usize,
    s: Status,
    a: Option<i64>,
    b: Option<i64>,
    o: Option<serde_json::Value>,
    e: Option<String>,
    /// The error's kind (absent in stores written before kinds were recorded).
    k: Option<crate::error::ErrorKind>,
    out: String,
    err: String,
    t: Option<Vec<AttemptRecord>>,
    j: Option<serde_json::Value>,
    x: Option<String>,
}

impl NodeRow {
    fn parse(v: serde_json::Value) -> Option<NodeRow> {
        let serde_json::Value::Array(mut a) = v else {
            return None;
        };
        a.resize(6, serde_json::Value::Null);
        let extras = a[5].take();
        let text = |k: &str| extras.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Some(NodeRow {
            n: a[0].as_u64()? as usize,
            s: Status::from_u8(a[1].as_u64()? as u8),
            a: a[2].as_i64(),
            b: a[3].as_i64(),
            o: Some(a[4].take()).filter(|v| !v.is_null()),
            e: text("e"),
            k: text("k").and_then(|k| crate::error::ErrorKind::parse(&k)),
            out: text("out").unwrap_or_default(),
            err: text("err").unwrap_or_default(),
            t: extras
                .get("t")
                .and_then(|t| serde_json::from_value(t.clone()).ok()),
            j: extras.get("j").cloned(),
            x: text("x"),
        })
    }
}

/// Builds node records from a stored graph and its node rows (nodes without a row have not
/// started; parameters carry their value).
fn assemble(
    graph: &GraphRec,
    path: &str,
    rows: &HashMap<(String, usize), NodeRow>,
    subs: &HashMap<String, (String, String, GraphRec)>,
    interrupted: bool,
) -> Vec<NodeRecord> {
    (0..graph.nodes.len())
        .map(|i| {
            let spec = &graph.nodes[i];
            let inputs = spec
                .4
                .iter()
                .map(|&(src, slot)| (src as usize, graph.edge_name(i, slot)))
                .collect();
            let sub_path = if path.is_empty() {
                i.to_string()
            } else {
                format!("{path}/{i}")
            };
            let sublattice = subs
                .get(&sub_path)
                .map(|(lattice, status, g)| SublatticeRecord {
                    lattice: lattice.clone(),
                    status: status.parse().unwrap_or(Status::Running),
                    nodes: assemble(g, &sub_path, rows, subs, interrupted),
                });
            let mut rec = NodeRecord {
                id: i,
                name: graph.name(i).to_string(),
                internal: graph.internal(i),
                status: Status::New,
                executor: graph.executor(i).map(str::to_string),
                inputs,
                output: None,
                error: None,
                error_kind: None,
                stdout: String::new(),
                stderr: String::new(),
                attempts: Vec::new(),
                start_time: None,
                end_time: None,
                job_handle: None,
                sublattice,
            };
            if spec.1 == encode::PARAMETER {
                rec.status = Status::Completed;
                rec.output = spec
                    .5
                    .as_ref()
                    .and_then(|v| serde_json::from_str(v.get()).ok());
            }
            if let Some(row) = rows.get(&(path.to_string(), i)) {
                rec.status = match row.s {
                    Status::Running | Status::Pending if interrupted => Status::Interrupted,
                    s => s,
                };
                rec.executor = row.x.clone().or(rec.executor);
                rec.start_time = row.a.map(|t| from_micros(graph.t0 + t));
                rec.end_time = row.b.map(|t| from_micros(graph.t0 + t));
                rec.output = row.o.clone();
                rec.error = row.e.clone();
                rec.error_kind = row.k;
                rec.stdout = row.out.clone();
                rec.stderr = row.err.clone();
                rec.job_handle = row.j.clone();
                rec.attempts =
                    row.t
                        .clone()
                        .unwrap_or_else(|| match (rec.start_time, rec.end_time) {
                            (Some(s), Some(e)) if rec.status != Status::Reused => {
                                vec![AttemptRecord {
                                    number: 1,
                                    start_time: s,
                                    end_time: e,
                                    error: rec.error.clone(),
                                    error_kind: rec.error_kind,
                                }]
                            }
                            _ => Vec::new(),
                        });
            }
            rec
        })
        .collect()
}

/// Opens a connection: refuses foreign, corrupt and newer databases without changing them,
/// then switches to WAL and migrates.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |reason: String| StoreError::Open {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            open_err(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_err(describe_open(path, &e)))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| open_err(e.to_string()))?;
    let corrupt = |e: rusqlite::Error| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let check = |found: schema::Found| match found {
        schema::Found::Foreign => Err(StoreError::Foreign {
            path: path.to_path_buf(),
        }),
        schema::Found::Ours(v) if v > schema::SCHEMA_VERSION => Err(StoreError::Newer {
            path: path.to_path_buf(),
            found: v,
            supported: schema::SCHEMA_VERSION,
        }),
        schema::Found::Ours(v) => Ok(v),
        schema::Found::Empty => Ok(0),
    };
    // Look first without writing anything: a foreign, corrupt or newer file stays as it was.
    let version = check(schema::inspect(&conn).map_err(corrupt)?)?;
    if version < schema::SCHEMA_VERSION {
        check(schema::migrate(&mut conn).map_err(|e| open_err(describe_open(path, &e)))?)?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(corrupt)?;
    if !mode.eq_ignore_ascii_case("wal") {
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(|e| open_err(describe_open(path, &e)))?;
    }
    // Checkpoints are the writer's job (when idle, or when the log grows large), never the
    // dispatcher's: an automatic one would land on whichever commit crosses the threshold.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")
        .map_err(|e| open_err(describe_open(path, &e)))?;
    Ok(conn)
}

fn describe_open(path: &Path, e: &rusqlite::Error) -> String {
    let msg = e.to_string();
    let readonly = msg.contains("readonly")
        || msg.contains("read-only")
        || msg.contains("unable to open")
        || path
            .parent()
            .and_then(|d| std::fs::metadata(d).ok())
            .is_some_and(|m| m.permissions().readonly());
    if readonly {
        format!(
            "{msg} (is the location read-only? set COVALENT_HOME or `[sdk] data_dir` in covalent.toml to a writable directory)"
        )
    } else {
        msg
    }
}
