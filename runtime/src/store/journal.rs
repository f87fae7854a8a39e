//! The write-behind journal: one writer thread per store records what the dispatcher did, in
//! batches, so the dispatcher never waits for the database.
//!
//! The dispatcher does nothing for it on the hot path: every tick (or at once when a run ends)
//! the writer scans the run's node statuses (an atomic load each, from the first node not yet
//! finished) and appends the nodes that changed to the run's node log, in one transaction. When a run has ended it writes every
//! remaining node and the final dispatch row, then marks the run flushed, which is what
//! `Dispatch::wait` waits for. The writer also refreshes the heartbeat of its running
//! dispatches and polls `cancel_requests` for them.
//!
//! This module owns the writer thread and its SQL; it must not schedule anything (it calls the
//! run's cancel methods, as any caller may).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, Transaction, params};
use tokio::sync::Notify;

use super::{encode, micros};
use crate::dispatcher::Run;
use crate::result::NodeResult;
use crate::status::Status;

/// `Active::written` of a node not logged yet.
const UNWRITTEN: u8 = u8::MAX;
/// How often a running dispatch's heartbeat is refreshed.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// Longest a noted node waits before it is written.
const TICK: Duration = Duration::from_millis(25);
/// How long the writer must have been idle before it checkpoints (so the checkpoint does not
/// land between two dispatches run back to back).
const CHECKPOINT_IDLE: Duration = Duration::from_millis(500);
/// Write-ahead log size that triggers a checkpoint even while dispatches run.
const WAL_LIMIT: u64 = 64 << 20;
/// How often cancel requests from other processes are looked for.
const CANCEL_POLL: Duration = Duration::from_millis(50);

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    incoming: Vec<Arc<Run>>,
    woken: bool,
    active_ids: HashSet<String>,
}

/// A store's writer.
pub(crate) struct Journal {
    shared: Arc<Shared>,
}

/// A run's side of the journal.
pub(crate) struct RunJournal {
    shared: Arc<Shared>,
    pub(crate) dispatch_id: String,
    /// `""` for the dispatch's own graph, `"3"` for the sublattice of node 3, `"3/1"` deeper.
    pub(crate) path: String,
    flushed: AtomicBool,
    flushed_notify: Notify,
}

impl RunJournal {
    /// Wakes the writer (a run ended).
    pub(crate) fn wake(&self) {
        let mut s = self.shared.state.lock().unwrap();
        s.woken = true;
        self.shared.wake.notify_one();
    }

    /// The journal of a sublattice of node `node` of this run.
    pub(crate) fn child(&self, node: u32) -> Arc<RunJournal> {
        Arc::new(RunJournal {
            shared: self.shared.clone(),
            dispatch_id: self.dispatch_id.clone(),
            path: if self.path.is_empty() {
                node.to_string()
            } else {
                format!("{}/{node}", self.path)
            },
            flushed: AtomicBool::new(false),
            flushed_notify: Notify::new(),
        })
    }

    /// Hands a run to the writer.
    pub(crate) fn register(&self, run: &Arc<Run>) {
        let mut s = self.shared.state.lock().unwrap();
        if self.path.is_empty() {
            s.active_ids.insert(self.dispatch_id.clone());
        }
        s.incoming.push(run.clone());
        s.woken = true;
        self.shared.wake.notify_one();
    }

    /// Waits until the run's final state is in the database.
    pub(crate) async fn flushed(&self) {
        loop {
            let n = self.flushed_notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.flushed.load(Ordering::Acquire) {
                return;
            }
            n.await;
        }
    }
}

impl Journal {
    /// Starts the writer thread on its own connection.
    pub(crate) fn start(conn: Connection, path: PathBuf) -> Journal {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("covalent-journal".into())
            .spawn(move || Writer::new(conn, path, s).run());
        if let Err(e) = spawned {
            eprintln!("covalent: cannot start the store's writer thread: {e}");
        }
        Journal { shared }
    }

    /// A journal for a new dispatch.
    pub(crate) fn for_dispatch(&self, id: &str) -> Arc<RunJournal> {
        Arc::new(RunJournal {
            shared: self.shared.clone(),
            dispatch_id: id.to_string(),
            path: String::new(),
            flushed: AtomicBool::new(false),
            flushed_notify: Notify::new(),
        })
    }

    /// Whether this process is running dispatch `id`.
    pub(crate) fn is_active(&self, id: &str) -> bool {
        self.shared.state.lock().unwrap().active_ids.contains(id)
    }
}

struct Active {
    run: Arc<Run>,
    graph_written: bool,
    /// Status last written for each node (`UNWRITTEN` if none).
    written: Vec<u8>,
    /// Every node before this one has its terminal state written.
    low: usize,
    /// Next `node_log` sequence number.
    seq: i64,
    /// Tasks written as COMPLETED or REUSED (internal nodes excluded).
    done_tasks: i64,
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    shared: Arc<Shared>,
    active: Vec<Active>,
    last_heartbeat: Instant,
    last_cancel_poll: Instant,
    /// When the last run finished (or the writer started).
    idle_since: Instant,
    /// The log has data a checkpoint has not moved yet.
    wal_pending: bool,
    cancel_seq: i64,
    warned: bool,
}

impl Writer {
    fn new(conn: Connection, path: PathBuf, shared: Arc<Shared>) -> Self {
        let cancel_seq = conn
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM cancel_requests",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        Writer {
            conn,
            path,
            shared,
            active: Vec::new(),
            last_heartbeat: Instant::now(),
            last_cancel_poll: Instant::now(),
            idle_since: Instant::now(),
            wal_pending: true,
            cancel_seq,
            warned: false,
        }
    }

    fn run(mut self) {
        loop {
            {
                let mut s = self.shared.state.lock().unwrap();
                if !s.woken {
                    let timeout = if !self.active.is_empty() {
                        TICK
                    } else if self.wal_pending {
                        CHECKPOINT_IDLE
                    } else {
                        Duration::from_secs(3600)
                    };
                    s = self.shared.wake.wait_timeout(s, timeout).unwrap().0;
                }
                s.woken = false;
                for run in s.incoming.drain(..) {
                    let n = run.states.len();
                    self.active.push(Active {
                        run,
                        graph_written: false,
                        written: vec![UNWRITTEN; n],
                        low: 0,
                        seq: 0,
                        done_tasks: 0,
                    });
                }
            }
            if self.active.is_empty() {
                self.checkpoint();
                continue;
            }
            let finished = match self.write_batch() {
                Ok(f) => f,
                Err(e) => {
                    self.warn(&e);
                    // Never leave a waiter hanging on a database that fails.
                    self.active
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.run.is_done())
                        .map(|(i, _)| i)
                        .collect()
                }
            };
            if !finished.is_empty() {
                self.idle_since = Instant::now();
                self.wal_pending = true;
            }
            for &i in finished.iter().rev() {
                let a = self.active.remove(i);
                if let Some(j) = a.run.journal.as_ref() {
                    if j.path.is_empty() {
                        self.shared
                            .state
                            .lock()
                            .unwrap()
                            .active_ids
                            .remove(&j.dispatch_id);
                    }
                    j.flushed.store(true, Ordering::Release);
                    j.flushed_notify.notify_waiters();
                }
            }
            self.checkpoint();
            if self.last_heartbeat.elapsed() >= HEARTBEAT {
                self.last_heartbeat = Instant::now();
                if let Err(e) = self.heartbeat() {
                    self.warn(&e);
                }
            }
            if self.last_cancel_poll.elapsed() >= CANCEL_POLL {
                self.last_cancel_poll = Instant::now();
                if let Err(e) = self.poll_cancels() {
                    self.warn(&e);
                }
            }
        }
    }

    /// Moves the write-ahead log into the database when nothing is running, or when the log
    /// has grown past [`WAL_LIMIT`] (readers never block this; a busy reader only delays it).
    fn checkpoint(&mut self) {
        let wal = self.path.with_extension("db-wal");
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let idle = self.active.is_empty() && self.idle_since.elapsed() >= CHECKPOINT_IDLE;
        if size == 0 {
            self.wal_pending = false;
            return;
        }
        if !idle && size < WAL_LIMIT {
            return;
        }
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            Ok(()) if idle => self.wal_pending = false,
            Ok(()) => {}
            Err(e) => self.warn(&e),
        }
    }

    fn warn(&mut self, e: &rusqlite::Error) {
        if !self.warned {
            self.warned = true;
            eprintln!(
                "covalent: warning: cannot record to the store {}: {e}",
                self.path.display()
            );
        }
    }

    /// Writes one batch; returns the indices of runs whose final state is now written.
    fn write_batch(&mut self) -> rusqlite::Result<Vec<usize>> {
        let tx = self.conn.transaction()?;
        let mut finished = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        for (idx, a) in self.active.iter_mut().enumerate() {
            let Some(j) = a.run.journal.clone() else {
                finished.push(idx);
                continue;
            };
            // Read "done" before scanning: every node is final once it is set.
            let ended = a.run.is_done();
            if !a.graph_written {
                write_graph(&tx, &a.run, &j)?;
                a.graph_written = true;
            }
            buf.clear();
            buf.push(b'[');
            scan(&mut buf, a, ended);
            if buf.len() > 1 {
                buf.push(b']');
                let text = std::str::from_utf8(&buf).unwrap_or("[]");
                tx.prepare_cached(
                    "INSERT INTO node_log (dispatch_id, path, seq, entries) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![j.dispatch_id, j.path, a.seq, text])?;
                a.seq += 1;
                if j.path.is_empty() {
                    tx.prepare_cached("UPDATE dispatches SET done_count = ?1 WHERE id = ?2")?
                        .execute(params![a.done_tasks, j.dispatch_id])?;
                }
            }
            if ended {
                write_final(&tx, &a.run, &j)?;
                finished.push(idx);
            }
        }
        tx.commit()?;
        Ok(finished)
    }

    fn heartbeat(&mut self) -> rusqlite::Result<()> {
        let now = micros(SystemTime::now());
        let ids: Vec<String> = self
            .shared
            .state
            .lock()
            .unwrap()
            .active_ids
            .iter()
            .cloned()
            .collect();
        let tx = self.conn.transaction()?;
        for id in ids {
            tx.execute(
                "UPDATE dispatches SET heartbeat_at = ?1 WHERE id = ?2 AND status = 'RUNNING'",
                params![now, id],
            )?;
        }
        tx.commit()
    }

    fn poll_cancels(&mut self) -> rusqlite::Result<()> {
        let rows: Vec<(i64, String, Option<i64>)> = {
            let mut st = self.conn.prepare_cached(
                "SELECT seq, dispatch_id, node_id FROM cancel_requests WHERE seq > ?1 ORDER BY seq",
            )?;
            let rows =
                st.query_map([self.cancel_seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (seq, id, node) in rows {
            self.cancel_seq = seq;
            let target = self.active.iter().find(|a| {
                a.run
                    .journal
                    .as_ref()
                    .is_some_and(|j| j.path.is_empty() && j.dispatch_id == id)
            });
            if let Some(a) = target {
                match node {
                    None => a.run.cancel_all(),
                    Some(n) => a.run.cancel_node(n as usize),
                }
            }
        }
        Ok(())
    }
}

fn write_graph(tx: &Transaction<'_>, run: &Run, j: &RunJournal) -> rusqlite::Result<()> {
    let graph = encode::encode_run(run);
    if j.path.is_empty() {
        tx.execute(
            "INSERT OR REPLACE INTO graphs (dispatch_id, graph) VALUES (?1, ?2)",
            params![j.dispatch_id, graph],
        )?;
    } else {
        tx.execute(
            "INSERT INTO sublattices (dispatch_id, path, lattice, status, graph)
             VALUES (?1, ?2, ?3, 'RUNNING', ?4)
             ON CONFLICT (dispatch_id, path) DO UPDATE SET lattice = excluded.lattice,
                 status = excluded.status, graph = excluded.graph",
            params![j.dispatch_id, j.path, run.graph.name, graph],
        )?;
    }
    Ok(())
}

fn write_final(tx: &Transaction<'_>, run: &Run, j: &RunJournal) -> rusqlite::Result<()> {
    let status = run.status();
    if j.path.is_empty() {
        let output = match run.states[run.graph.output as usize].value.get() {
            Some(v) if status == Status::Completed => Some(v.to_json_string()),
            _ => None,
        };
        let ended = run
            .end_offset()
            .map(|d| micros(run.started_wall + d))
            .unwrap_or_else(|| micros(SystemTime::now()));
        tx.execute(
            "UPDATE dispatches SET status = ?1, output = ?2, error = ?3, ended_at = ?4 WHERE id = ?5",
            params![status.as_str(), output, run.error.get(), ended, j.dispatch_id],
        )?;
    } else {
        tx.execute(
            "UPDATE sublattices SET status = ?1 WHERE dispatch_id = ?2 AND path = ?3",
            params![status.as_str(), j.dispatch_id, j.path],
        )?;
    }
    Ok(())
}

/// Appends node `i`'s state to a batch: `[id, status, start, end, output, {extras}]` (see
/// `NodeRow` in `store/mod.rs`).
/// Appends the nodes whose status changed since the last batch (all remaining ones when the
/// run has ended). NEW and PENDING nodes are not logged: no entry means "not started".
fn scan(buf: &mut Vec<u8>, a: &mut Active, ended: bool) {
    let n = a.written.len();
    let mut i = a.low;
    let mut all_final_so_far = true;
    while i < n {
        let written = a.written[i];
        if written != UNWRITTEN && Status::from_u8(written).is_terminal() {
            if all_final_so_far {
                a.low = i + 1;
            }
            i += 1;
            continue;
        }
        let status = if matches!(a.run.graph.nodes[i].op, crate::graph::Op::Param(_)) {
            a.written[i] = Status::Completed as u8;
            i += 1;
            continue;
        } else {
            a.run.states[i].status()
        };
        let changed =
            status as u8 != written && (ended || !matches!(status, Status::New | Status::Pending));
        if changed {
            entry(buf, a, i, status);
            a.written[i] = status as u8;
        }
        if !status.is_terminal() {
            all_final_so_far = false;
        } else if all_final_so_far {
            a.low = i + 1;
        }
        i += 1;
    }
}

fn entry(buf: &mut Vec<u8>, a: &mut Active, i: usize, status: Status) {
    let run = &a.run;
    let view = NodeResult::new(run, i);
    if matches!(status, Status::Completed | Status::Reused) && !view.is_internal() {
        a.done_tasks += 1;
    }
    if buf.len() > 1 {
        buf.push(b',');
    }
    let mut num = itoa::Buffer::new();
    buf.push(b'[');
    buf.extend_from_slice(num.format(i).as_bytes());
    buf.push(b',');
    buf.extend_from_slice(num.format(status as u8).as_bytes());
    let (start, end) = run.states[i].times();
    for t in [start, end] {
        match t {
            Some(t) => {
                buf.push(b',');
                buf.extend_from_slice(num.format(t.as_micros() as u64).as_bytes());
            }
            None => buf.extend_from_slice(b",null"),
        }
    }
    match view.output() {
        Some(o) if matches!(status, Status::Completed | Status::Reused) => {
            buf.push(b',');
            o.write_json(buf);
        }
        _ => buf.extend_from_slice(b",null"),
    }
    let extra = run.states[i].extra.lock().unwrap();
    if let Some(x) = extra.as_deref() {
        let mut extras = serde_json::Map::new();
        let mut text = |key: &str, v: &str| {
            extras.insert(key.into(), serde_json::Value::from(v));
        };
        if let Some(e) = &x.error {
            text("e", e);
        }
        if !x.stdout.is_empty() {
            text("out", &x.stdout);
        }
        if !x.stderr.is_empty() {
            text("err", &x.stderr);
        }
        if let Some(e) = &x.executor {
            text("x", e.short_name());
        }
        if let Some(h) = &x.job_handle {
            extras.insert("j".into(), h.0.clone());
        }
        if !x.attempts.is_empty() {
            let recs: Vec<crate::record::AttemptRecord> = x
                .attempts
                .iter()
                .map(|t| crate::record::AttemptRecord {
                    number: t.number,
                    start_time: chrono::DateTime::from(run.started_wall + t.start_offset()),
                    end_time: chrono::DateTime::from(
                        run.started_wall + t.start_offset() + t.duration(),
                    ),
                    error: t.error.clone(),
                })
                .collect();
            extras.insert("t".into(), serde_json::to_value(recs).unwrap_or_default());
        }
        if !extras.is_empty() {
            buf.push(b',');
            let _ = serde_json::to_writer(&mut *buf, &serde_json::Value::Object(extras));
        }
    }
    buf.push(b']');
}
