//! The worker pool that runs sync electrons of the `local` executor and internal nodes, off the
//! async runtime.
//!
//! It starts with one thread per core. A monitor thread watches for starvation: while jobs are
//! queued and no node has finished for a couple of milliseconds (every worker is blocked in a
//! sleeping or waiting electron), it adds a thread, up to a cap. So blocking electrons still
//! all run at once, and trivial ones pay no thread hand-off. Extra threads retire after idling.
//!
//! This module owns threads and the queue. It is generic over the [`Job`] trait it defines and
//! knows nothing of what a job does (the dispatcher implements it for its runs).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long the monitor waits without progress before adding a thread.
const STARVATION: Duration = Duration::from_millis(2);
/// How long a worker that found the queue empty looks for new jobs before it sleeps: jobs often
/// come in bursts microseconds apart (a layer of a graph making the next one ready), and waking
/// a sleeping thread costs tens of microseconds where the core has gone idle.
const SPIN: Duration = Duration::from_micros(30);
/// How long an extra thread idles before it retires.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Default cap on threads.
pub(crate) const DEFAULT_MAX_THREADS: usize = 512;

/// The cap on threads of every pool (the `local` executor's `max_workers`).
static MAX_THREADS: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_THREADS);

/// What a pool runs: numbered nodes of an owner (a run).
pub(crate) trait Job: Send + Sync + 'static {
    /// Runs node `node` of `this`, starting at time stamp `at` (0: read the clock); returns the
    /// next node to run on this thread and its start stamp.
    fn run(this: &Arc<Self>, node: u32, at: u64) -> Option<(u32, u64)>;
}

struct Queue<J> {
    jobs: VecDeque<(Arc<J>, u32)>,
    idle: usize,
    threads: usize,
    monitor_parked: bool,
}

pub(crate) struct Pool<J> {
    queue: Mutex<Queue<J>>,
    work: Condvar,
    monitor: Condvar,
    progress: AtomicU64,
    /// Jobs in the queue, readable without the lock (by spinning workers).
    queued: AtomicUsize,
    /// Workers spinning for jobs now (at most one per core spins; the others sleep at once).
    spinning: AtomicUsize,
    /// Threads held by jobs that were given up while their code ran (it cannot be stopped):
    /// not counted against the cap, and replaced when given up.
    stuck: AtomicUsize,
    core: usize,
}

/// Starts a pool: one worker per core and the monitor.
pub(crate) fn start<J: Job>() -> Arc<Pool<J>> {
    let core = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let pool = Arc::new(Pool {
        queue: Mutex::new(Queue {
            jobs: VecDeque::new(),
            idle: 0,
            threads: 0,
            monitor_parked: false,
        }),
        work: Condvar::new(),
        monitor: Condvar::new(),
        progress: AtomicU64::new(0),
        queued: AtomicUsize::new(0),
        spinning: AtomicUsize::new(0),
        stuck: AtomicUsize::new(0),
        core,
    });
    {
        let mut q = pool.queue.lock().unwrap();
        for _ in 0..core {
            q.threads += 1;
            spawn_worker(pool.clone());
        }
    }
    let p = pool.clone();
    std::thread::Builder::new()
        .name("covalent-monitor".into())
        .spawn(move || monitor(p))
        .expect("cannot start the covalent pool monitor thread");
    pool
}

/// Sets the cap on pool threads (the `local` executor's `max_workers`; never below one per
/// core).
pub(crate) fn set_max_threads(n: usize) {
    MAX_THREADS.store(n, Ordering::Relaxed);
}

impl<J: Job> Pool<J> {
    /// Queues nodes of `run`.
    pub(crate) fn push(&self, run: &Arc<J>, nodes: Vec<u32>) {
        let n = nodes.len();
        let (idle, monitor_parked) = {
            let mut q = self.queue.lock().unwrap();
            q.jobs.extend(nodes.into_iter().map(|i| (run.clone(), i)));
            self.queued.store(q.jobs.len(), Ordering::Release);
            (q.idle, q.monitor_parked)
        };
        // Wake after unlocking, so a woken worker does not block on the queue at once. Idle
        // workers and a parked monitor wait on the condvars until notified, so nothing is lost.
        if idle > 0 {
            if n == 1 {
                self.work.notify_one();
            } else {
                self.work.notify_all();
            }
        }
        if monitor_parked {
            self.monitor.notify_one();
        }
    }

    /// A job was given up while its code still runs on a thread (which cannot be stopped): that
    /// thread no longer counts as a worker, and a new worker takes its place.
    pub(crate) fn given_up(self: &Arc<Self>) {
        self.stuck.fetch_add(1, Ordering::AcqRel);
        let mut q = self.queue.lock().unwrap();
        q.threads += 1;
        spawn_worker(self.clone());
    }

    /// The code of a given-up job returned: its thread is a worker again (extra workers retire
    /// after idling).
    pub(crate) fn given_up_returned(&self) {
        let _ = self
            .stuck
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Takes the job at the head of the queue if it is one of `run`'s.
    pub(crate) fn take_for(&self, run: &Arc<J>) -> Option<u32> {
        let mut q = self.queue.lock().unwrap();
        match q.jobs.front() {
            Some((r, _)) if Arc::ptr_eq(r, run) => {
                let job = q.jobs.pop_front();
                self.queued.store(q.jobs.len(), Ordering::Release);
                job.map(|(_, n)| n)
            }
            _ => None,
        }
    }

    /// Runs `node` of `run` and the continuations it hands back, on this thread; each node's
    /// end stamp is the next one's start. Pool workers and a helping `dispatch_sync` caller both
    /// run nodes this way.
    pub(crate) fn run_chain(&self, run: &Arc<J>, mut node: u32) {
        let mut at = 0;
        while let Some((next, end)) = J::run(run, node, at) {
            self.progress.fetch_add(1, Ordering::Relaxed);
            (node, at) = (next, end);
        }
        self.progress.fetch_add(1, Ordering::Relaxed);
    }
}

fn spawn_worker<J: Job>(pool: Arc<Pool<J>>) {
    let r = std::thread::Builder::new()
        .name("covalent-worker".into())
        .spawn(move || worker(pool.clone()));
    if let Err(e) = r {
        eprintln!("covalent: cannot start a worker thread: {e}");
    }
}

fn worker<J: Job>(pool: Arc<Pool<J>>) {
    loop {
        let job = {
            let mut q = pool.queue.lock().unwrap();
            let mut spun = false;
            loop {
                if let Some(j) = q.jobs.pop_front() {
                    pool.queued.store(q.jobs.len(), Ordering::Release);
                    break j;
                }
                if !spun {
                    spun = true;
                    drop(q);
                    spin_for_jobs(&pool);
                    q = pool.queue.lock().unwrap();
                    continue;
                }
                q.idle += 1;
                let (g, timeout) = pool.work.wait_timeout(q, KEEP_ALIVE).unwrap();
                q = g;
                q.idle -= 1;
                if timeout.timed_out() && q.jobs.is_empty() && q.threads > pool.core {
                    q.threads -= 1;
                    return;
                }
            }
        };
        let (run, node) = job;
        pool.run_chain(&run, node);
    }
}

/// Waits up to [`SPIN`] for a job to be queued, without sleeping; at once if a worker per core
/// is spinning already (a grown pool of blocked-electron threads must not all spin).
fn spin_for_jobs<J>(pool: &Pool<J>) {
    if pool.spinning.fetch_add(1, Ordering::AcqRel) < pool.core {
        spin(SPIN, |_| pool.queued.load(Ordering::Acquire) > 0);
    }
    pool.spinning.fetch_sub(1, Ordering::AcqRel);
}

/// Spins until `done` says so or `limit` has passed, yielding the core now and then (on a busy
/// machine the thread that would end the wait needs it). `done` gets `true` on those rounds, for
/// checks too costly to make on every round (the first round is one). Returns whether `done`
/// said so.
pub(crate) fn spin(limit: Duration, mut done: impl FnMut(bool) -> bool) -> bool {
    let start = std::time::Instant::now();
    let mut round = 0u32;
    loop {
        let checkpoint = round.is_multiple_of(64);
        round = round.wrapping_add(1);
        if done(checkpoint) {
            return true;
        }
        if checkpoint {
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

fn monitor<J: Job>(pool: Arc<Pool<J>>) {
    loop {
        let before = {
            let mut q = pool.queue.lock().unwrap();
            while q.jobs.is_empty() {
                q.monitor_parked = true;
                q = pool.monitor.wait(q).unwrap();
                q.monitor_parked = false;
            }
            pool.progress.load(Ordering::Relaxed)
        };
        std::thread::sleep(STARVATION);
        let mut q = pool.queue.lock().unwrap();
        if !q.jobs.is_empty()
            && q.idle == 0
            && pool.progress.load(Ordering::Relaxed) == before
            && q.threads.saturating_sub(pool.stuck.load(Ordering::Acquire))
                < MAX_THREADS.load(Ordering::Relaxed).max(pool.core)
        {
            q.threads += 1;
            spawn_worker(pool.clone());
        }
    }
}
