//! The write-behind journal: one writer thread per store records what the dispatcher did, in
//! batches, so the dispatcher never waits for the database.
//!
//! The dispatcher only pushes node ids onto its run's pending list ([`RunJournal::note`]);
//! every tick (or at once when a run ends) the writer reads those nodes' current state from
//! the run and upserts their rows in one transaction. When a run has ended it writes every
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

/// How often a running dispatch's heartbeat is refreshed.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// Longest a noted node waits before it is written.
const TICK: Duration = Duration::from_millis(25);
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
    pending: Mutex<Vec<u32>>,
    flushed: AtomicBool,
    flushed_notify: Notify,
}

impl RunJournal {
    /// Records that node `i` changed state.
    pub(crate) fn note(&self, i: u32) {
        self.pending.lock().unwrap().push(i);
    }

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
            pending: Mutex::new(Vec::new()),
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
            pending: Mutex::new(Vec::new()),
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
    /// Nodes whose terminal state is written.
    done: Vec<bool>,
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    shared: Arc<Shared>,
    active: Vec<Active>,
    last_heartbeat: Instant,
    last_cancel_poll: Instant,
    cancel_seq: i64,
    warned: bool,
}

const UPSERT_NODE: &str = "
    INSERT INTO nodes (dispatch_id, path, node_id, name, internal, status, executor, started_at,
                       ended_at, output, error, stdout, stderr, attempts, job_handle)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
    ON CONFLICT (dispatch_id, path, node_id) DO UPDATE SET
        status = excluded.status, executor = excluded.executor,
        started_at = excluded.started_at, ended_at = excluded.ended_at,
        output = excluded.output, error = excluded.error, stdout = excluded.stdout,
        stderr = excluded.stderr, attempts = excluded.attempts, job_handle = excluded.job_handle";

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
            cancel_seq,
            warned: false,
        }
    }

    fn run(mut self) {
        loop {
            {
                let mut s = self.shared.state.lock().unwrap();
                if !s.woken {
                    let timeout = if self.active.is_empty() {
                        Duration::from_secs(3600)
                    } else {
                        TICK
                    };
                    s = self.shared.wake.wait_timeout(s, timeout).unwrap().0;
                }
                s.woken = false;
                for run in s.incoming.drain(..) {
                    let n = run.states.len();
                    self.active.push(Active {
                        run,
                        graph_written: false,
                        done: vec![false; n],
                    });
                }
            }
            if self.active.is_empty() {
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
        {
            let mut upsert = tx.prepare_cached(UPSERT_NODE)?;
            for (idx, a) in self.active.iter_mut().enumerate() {
                let Some(j) = a.run.journal.clone() else {
                    finished.push(idx);
                    continue;
                };
                // Read "done" before draining, so nothing noted before the end is missed.
                let ended = a.run.is_done();
                if !a.graph_written {
                    write_graph(&tx, &a.run, &j)?;
                    a.graph_written = true;
                }
                let pending = std::mem::take(&mut *j.pending.lock().unwrap());
                for i in pending {
                    write_node(&mut upsert, &a.run, &j, i as usize, &mut a.done)?;
                }
                if ended {
                    for i in 0..a.done.len() {
                        if !a.done[i] {
                            write_node(&mut upsert, &a.run, &j, i, &mut a.done)?;
                        }
                    }
                    write_final(&tx, &a.run, &j)?;
                    finished.push(idx);
                }
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
    let graph = serde_json::to_string(&encode::encode_run(run)).unwrap_or_default();
    if j.path.is_empty() {
        tx.execute(
            "UPDATE dispatches SET graph = ?1 WHERE id = ?2",
            params![graph, j.dispatch_id],
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

fn write_node(
    upsert: &mut rusqlite::CachedStatement<'_>,
    run: &Run,
    j: &RunJournal,
    i: usize,
    done: &mut [bool],
) -> rusqlite::Result<()> {
    if done[i] || matches!(run.graph.nodes[i].op, crate::graph::Op::Param(_)) {
        done[i] = true;
        return Ok(());
    }
    let view = NodeResult::new(run, i);
    let status = view.status();
    if status.is_terminal() {
        done[i] = true;
    }
    let (start, end) = run.states[i].times();
    let at = |d: Option<Duration>| d.map(|d| micros(run.started_wall + d));
    let output = match status {
        Status::Completed | Status::Reused => view.output().map(|o| o.to_json_string()),
        _ => None,
    };
    let (error, stdout, stderr, attempts, job) = {
        let extra = run.states[i].extra.lock().unwrap();
        match extra.as_deref() {
            None => (None, String::new(), String::new(), None, None),
            Some(x) => (
                x.error.clone(),
                x.stdout.clone(),
                x.stderr.clone(),
                (!x.attempts.is_empty()).then(|| {
                    let recs: Vec<crate::record::AttemptRecord> = x
                        .attempts
                        .iter()
                        .map(|a| crate::record::AttemptRecord {
                            number: a.number,
                            start_time: chrono::DateTime::from(run.started_wall + a.start_offset()),
                            end_time: chrono::DateTime::from(
                                run.started_wall + a.start_offset() + a.duration(),
                            ),
                            error: a.error.clone(),
                        })
                        .collect();
                    serde_json::to_string(&recs).unwrap_or_default()
                }),
                x.job_handle
                    .as_ref()
                    .map(|h| serde_json::to_string(&h.0).unwrap_or_default()),
            ),
        }
    };
    upsert.execute(params![
        j.dispatch_id,
        j.path,
        i as i64,
        view.name(),
        view.is_internal(),
        status.as_str(),
        view.executor(),
        at(start),
        at(end),
        output,
        error,
        stdout,
        stderr,
        attempts,
        job,
    ])?;
    Ok(())
}
