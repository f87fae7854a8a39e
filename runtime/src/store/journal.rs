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
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, params};
use tokio::sync::Notify;

use super::NewDispatch;
use super::batch::{self, Key, Rows};
use crate::dispatcher::{Run, RunObserver};
use crate::time::micros;

/// How often a running dispatch's heartbeat is refreshed.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// Longest a noted node waits before it is written.
const TICK: Duration = Duration::from_millis(25);
/// How long the writer must have been idle before it checkpoints (so the checkpoint does not
/// land between two dispatches run back to back).
const CHECKPOINT_IDLE: Duration = Duration::from_millis(500);
/// Commits after which the write-ahead log is checkpointed even while dispatches run (a few
/// megabytes of log): small enough that the log restarts often, so a commit overwrites pages the
/// file already has (growing the file costs the file system block allocation and zeroing on
/// every commit), and rare enough to cost little per commit.
const CHECKPOINT_EVERY: u64 = 256;
/// Longest a checkpoint waits to restart the log (holding other writers off meanwhile).
const RESTART_WAIT: Duration = Duration::from_millis(20);
/// How often cancel requests from other processes are looked for.
const CANCEL_POLL: Duration = Duration::from_millis(50);

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Commits since the last checkpoint (the writer's and its waiters' inline ones).
    commits: std::sync::atomic::AtomicU64,
    /// Anything was committed through this journal (see `checkpoint_at_exit`).
    wrote: AtomicBool,
}

impl Shared {
    fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.wrote.store(true, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct State {
    incoming: Vec<(Arc<Run>, Arc<RunJournal>)>,
    woken: bool,
    active_ids: HashSet<String>,
    /// The writer is waiting for at most a tick (it has runs to watch): a new run need not
    /// wake it, it takes the run at that tick, well before the run's first batch is due.
    ticking: bool,
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
    /// Running nodes to write again although their status did not change.
    pub(crate) changed: Mutex<Vec<u32>>,
    /// The dispatch's row, until the first batch writes it (a top-level run only).
    row: Mutex<Option<NewDispatch>>,
    /// Who writes the run: nobody yet, the writer thread, or its waiter in one go.
    claim: AtomicU8,
    /// A sublattice run started under it (then the writer writes it: it writes the children).
    has_children: AtomicBool,
    /// When it was registered.
    born: Instant,
    /// The store, to write the row at once when work is about to leave the process.
    store: std::sync::Weak<super::Store>,
}

/// [`RunJournal::claim`]: not written yet.
const UNCLAIMED: u8 = 0;
/// The writer thread writes it, batch by batch.
const WRITER: u8 = 1;
/// Its waiter wrote it whole, once it had ended.
const INLINE: u8 = 2;

impl RunJournal {
    /// Wakes the writer (a run ended).
    fn wake(&self) {
        let mut s = self.shared.state.lock().unwrap();
        s.woken = true;
        self.shared.wake.notify_one();
    }

    /// The journal of a sublattice of node `node` of this run.
    fn child(&self, node: u32) -> Arc<RunJournal> {
        self.has_children.store(true, Ordering::Release);
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
            changed: Mutex::new(Vec::new()),
            row: Mutex::new(None),
            claim: AtomicU8::new(WRITER),
            has_children: AtomicBool::new(false),
            born: Instant::now(),
            store: std::sync::Weak::new(),
        })
    }

    /// Hands a run to the writer (waking it only when it is not ticking already: a small
    /// dispatch, written whole by its waiter, then costs the writer nothing but a look at it).
    fn register(self: Arc<Self>, run: &Arc<Run>) {
        let mut s = self.shared.state.lock().unwrap();
        if self.path.is_empty() {
            s.active_ids.insert(self.dispatch_id.clone());
        }
        s.incoming.push((run.clone(), self.clone()));
        if !s.ticking {
            s.woken = true;
            self.shared.wake.notify_one();
        }
    }

    /// Waits until the ended run's final state is in the database: written here and now, in
    /// one transaction on `store`'s connection, when the writer has not started on it (a run
    /// that ended within its first tick, the common small dispatch: one commit and no thread
    /// hand-off), else by the writer.
    pub(crate) async fn flush(&self, run: &Arc<Run>, store: &super::Store) {
        if run.is_done()
            && !self.has_children.load(Ordering::Acquire)
            && self
                .claim
                .compare_exchange(UNCLAIMED, INLINE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let row = self.row.lock().unwrap().take();
            self.shared.committed();
            if let Err(e) = store.write_whole(run, &self.dispatch_id, row.as_ref()) {
                eprintln!(
                    "covalent: warning: cannot record to the store {}: {e}",
                    store.path().display()
                );
            }
            self.mark_flushed();
            return;
        }
        self.flushed().await
    }

    /// Its final state is in the database (or could not be written and was warned about):
    /// no longer an active dispatch of this process, and its waiters go on.
    fn mark_flushed(&self) {
        if self.path.is_empty() {
            self.shared
                .state
                .lock()
                .unwrap()
                .active_ids
                .remove(&self.dispatch_id);
        }
        self.flushed.store(true, Ordering::Release);
        self.flushed_notify.notify_waiters();
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

impl RunObserver for RunJournal {
    fn started(self: Arc<Self>, run: &Arc<Run>) {
        self.register(run);
    }
    fn finished(&self, _run: &Run) {
        // A dispatch nothing has written yet is written by its waiter (`flush`), or by the
        // writer's next tick if nobody waits: waking the writer now would only race the waiter.
        if self.claim.load(Ordering::Acquire) != UNCLAIMED {
            self.wake();
        }
    }
    fn child(&self, node: u32) -> Arc<dyn RunObserver> {
        RunJournal::child(self, node)
    }
    fn node_changed(&self, node: u32) {
        // A job handle: work is about to leave the process, so the dispatch must be findable
        // before it does. Its row (not written yet for `dispatch_sync`) is written now, on
        // this thread; the handle goes with the writer's next batch, at once.
        let row = self.row.lock().unwrap().take();
        if let Some(row) = row
            && let Some(store) = self.store.upgrade()
        {
            if let Err(e) = store.insert_dispatch(&row) {
                eprintln!("covalent: warning: cannot record dispatch {}: {e}", row.id);
                *self.row.lock().unwrap() = Some(row);
            } else {
                self.shared.committed();
            }
        }
        self.changed.lock().unwrap().push(node);
        self.wake();
    }
}

impl Journal {
    /// Starts the writer thread on its own connection.
    pub(crate) fn start(conn: Connection, path: PathBuf) -> Journal {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            commits: Default::default(),
            wrote: AtomicBool::new(false),
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

    /// A journal for a new dispatch; its row, when given, is written with its first batch.
    pub(crate) fn for_dispatch(
        &self,
        id: String,
        row: Option<NewDispatch>,
        store: std::sync::Weak<super::Store>,
    ) -> Arc<RunJournal> {
        Arc::new(RunJournal {
            shared: self.shared.clone(),
            dispatch_id: id,
            path: String::new(),
            flushed: AtomicBool::new(false),
            flushed_notify: Notify::new(),
            changed: Mutex::new(Vec::new()),
            // With the row written already (`dispatch`), the writer writes from its first tick
            // on, as for any run; without (`dispatch_sync`), see `flush`.
            claim: AtomicU8::new(if row.is_some() { UNCLAIMED } else { WRITER }),
            row: Mutex::new(row),
            has_children: AtomicBool::new(false),
            born: Instant::now(),
            store,
        })
    }

    /// Whether anything was committed through this journal.
    pub(crate) fn wrote(&self) -> bool {
        self.shared.wrote.load(Ordering::Relaxed)
    }

    /// Whether this process is running dispatch `id`.
    pub(crate) fn is_active(&self, id: &str) -> bool {
        self.shared.state.lock().unwrap().active_ids.contains(id)
    }
}

struct Active {
    run: Arc<Run>,
    journal: Arc<RunJournal>,
    rows: Rows,
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
                        self.next_due()
                    } else if self.wal_pending {
                        CHECKPOINT_IDLE
                    } else {
                        Duration::from_secs(3600)
                    };
                    s.ticking = timeout <= TICK;
                    s = self.shared.wake.wait_timeout(s, timeout).unwrap().0;
                }
                s.ticking = false;
                s.woken = false;
                for (run, journal) in s.incoming.drain(..) {
                    let rows = Rows::new(run.nodes().len());
                    self.active.push(Active { run, journal, rows });
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
                self.active.remove(i).journal.mark_flushed();
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

    /// How long until the next batch is due: a tick, or sooner when a run not written yet
    /// reaches its first tick before that (so a run taken at a tick is still written a tick
    /// after it started).
    fn next_due(&self) -> Duration {
        self.active
            .iter()
            .filter(|a| a.journal.claim.load(Ordering::Acquire) == UNCLAIMED)
            .map(|a| TICK.saturating_sub(a.journal.born.elapsed()))
            .min()
            .map_or(TICK, |d| d.max(Duration::from_millis(1)))
    }

    /// Moves the write-ahead log into the database when nothing is running, or when the log
    /// has taken [`CHECKPOINT_EVERY`] commits (readers never block this; a busy reader only delays
    /// it).
    fn checkpoint(&mut self) {
        let idle = self.active.is_empty() && self.idle_since.elapsed() >= CHECKPOINT_IDLE;
        let pending = self.shared.commits.load(Ordering::Relaxed);
        if !idle && pending < CHECKPOINT_EVERY {
            return;
        }
        if idle && pending == 0 {
            let wal = self.path.with_extension("db-wal");
            if std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0 {
                self.wal_pending = false;
                return;
            }
        }
        // PASSIVE moves the bulk without stopping anyone. Commits go on meanwhile (the
        // waiters' own, back to back), so it never ends with the whole log moved, and a log is
        // only restarted from its first frame once it has been: without the second step it
        // grows for as long as dispatches follow each other (hundreds of megabytes a minute),
        // and every commit pays for the file system allocating new pages. RESTART moves what
        // came in meanwhile (a few frames) holding off new writers for that long (they wait in
        // their busy handler), and makes the next commit start the log again. It also waits
        // for readers of older snapshots, holding writers off meanwhile: so it waits briefly
        // (a reader in another process may hold its snapshot for long), and a checkpoint that
        // could not restart the log is tried again at the next one.
        let moved = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .and_then(|()| {
                self.conn.busy_timeout(RESTART_WAIT)?;
                let restarted = self
                    .conn
                    .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
                self.conn.busy_timeout(super::connect::BUSY_TIMEOUT)?;
                match restarted {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::DatabaseBusy =>
                    {
                        Ok(())
                    }
                    other => other,
                }
            });
        match moved {
            Ok(()) => {
                self.shared.commits.fetch_sub(pending, Ordering::Relaxed);
                if idle {
                    self.wal_pending = false;
                }
            }
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

    /// Writes one batch; returns the indices of runs whose final state is now written (or
    /// that their waiter wrote whole).
    ///
    /// A `dispatch_sync` dispatch is first written once it is a tick old, has ended (then it
    /// may be its waiter that writes it, see [`RunJournal::flush`]) or has set a job handle
    /// (its work is leaving the process: it must be findable from now on): so it is in the
    /// store within [`TICK`] of its start, and a small dispatch costs one commit.
    fn write_batch(&mut self) -> rusqlite::Result<Vec<usize>> {
        let mut finished = Vec::new();
        let mut due = Vec::new();
        for (idx, a) in self.active.iter().enumerate() {
            let j = &a.journal;
            match j.claim.load(Ordering::Acquire) {
                INLINE => finished.push(idx),
                // Young and still running: its waiter may write it whole. A job handle set
                // meanwhile (work about to leave the process) is written at once.
                UNCLAIMED
                    if !a.run.is_done()
                        && j.born.elapsed() < TICK
                        && j.changed.lock().unwrap().is_empty() => {}
                UNCLAIMED => {
                    if j.claim
                        .compare_exchange(UNCLAIMED, WRITER, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        due.push(idx);
                    } else {
                        finished.push(idx);
                    }
                }
                _ => due.push(idx),
            }
        }
        if due.is_empty() {
            return Ok(finished);
        }
        let tx = self.conn.transaction()?;
        let mut buf: Vec<u8> = Vec::new();
        let mut taken: Vec<(usize, NewDispatch)> = Vec::new();
        let mut written = Vec::new();
        let mut batch = || -> rusqlite::Result<()> {
            for &idx in &due {
                let a = &mut self.active[idx];
                let j = &a.journal;
                let key = Key {
                    dispatch_id: &j.dispatch_id,
                    path: &j.path,
                };
                let row = j.row.lock().unwrap().take();
                if let Some(row) = row {
                    let inserted = row.insert(&tx);
                    taken.push((idx, row));
                    inserted?;
                }
                let changed = std::mem::take(&mut *j.changed.lock().unwrap());
                if batch::write_run(&tx, &a.run, &mut a.rows, &key, &mut buf, &changed)? {
                    written.push(idx);
                }
            }
            Ok(())
        };
        let wrote = batch();
        match wrote.and_then(|()| tx.commit()) {
            Ok(()) => {
                self.shared.committed();
                finished.extend(written);
                finished.sort_unstable();
                Ok(finished)
            }
            Err(e) => {
                // Not written: the rows go back for the next batch.
                for (idx, row) in taken {
                    *self.active[idx].journal.row.lock().unwrap() = Some(row);
                }
                Err(e)
            }
        }
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
            let target = self
                .active
                .iter()
                .find(|a| a.journal.path.is_empty() && a.journal.dispatch_id == id);
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
