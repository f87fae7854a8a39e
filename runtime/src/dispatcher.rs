//! The dispatcher: runs a built graph.
//!
//! Scheduling state lives in memory, one [`NodeState`] per node: an in-degree counter, a
//! status, times and the output. There is no central loop. Whoever finishes a node (a pool
//! worker or an async task) decrements its dependants' counters and schedules the ones that
//! become ready: sync electrons on the local executor and internal nodes run on the worker
//! pool (the finishing worker keeps one as its next job, so a chain never changes thread);
//! everything else (async electrons, other executors, time limits, sublattices) runs as a task
//! on the async runtime, where `time_limit`, `retries` and cancellation are enforced. A
//! `dispatch_sync` caller runs pool nodes of its own dispatch too ([`Run::help_until_done`]).
//!
//! This module owns scheduling, attempts and failure propagation. It does not build graphs,
//! format results or know any particular executor beyond the `Executor` trait.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::Config;
use crate::electron::{Args, Body, ElectronDef, TaskError};
use crate::executor::{
    CtxInner, ExecutorError, ExecutorRef, ExecutorSel, JobHandle, Task, TaskContext,
    write_streams_to_file,
};
use crate::graph::{Graph, NO_EXECUTOR, Op, WAIT_SLOT};
use crate::pool;
use crate::status::Status;
use crate::store::journal::RunJournal;
use crate::value::Output;

const NEW: u8 = Status::New as u8;
const PENDING: u8 = Status::Pending as u8;
const RUNNING: u8 = Status::Running as u8;
const COMPLETED: u8 = Status::Completed as u8;
const FAILED: u8 = Status::Failed as u8;
const CANCELLED: u8 = Status::Cancelled as u8;
const NOT_RUN: u8 = Status::NotRun as u8;

// ---- panics ---------------------------------------------------------------------------------

thread_local! {
    static CAPTURE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs (once) a panic hook that, inside an electron, records the message and location
/// instead of printing them; elsewhere it defers to the previous hook.
pub(crate) fn install_panic_hook() {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURE.with(|c| c.get()) {
                let msg = panic_message(info.payload());
                let text = match info.location() {
                    Some(l) => format!("{msg} (at {}:{}:{})", l.file(), l.line(), l.column()),
                    None => msg,
                };
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
            } else {
                prev(info)
            }
        }));
    });
}

/// The message of a panic payload.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// Runs `f`, turning a panic into [`TaskError::Panicked`].
pub(crate) fn catch<R>(f: impl FnOnce() -> Result<R, TaskError>) -> Result<R, TaskError> {
    let prev = CAPTURE.with(|c| c.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    CAPTURE.with(|c| c.set(prev));
    match r {
        Ok(r) => r,
        Err(p) => Err(TaskError::Panicked(
            LAST_PANIC
                .with(|l| l.borrow_mut().take())
                .unwrap_or_else(|| panic_message(&*p)),
        )),
    }
}

/// Polls a future, turning a panic into `Err(message)` (with the location, as [`catch`]).
pub(crate) struct CatchPanic<F: ?Sized>(Pin<Box<F>>);

impl<F: std::future::Future + ?Sized> std::future::Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch(|| Ok(fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(TaskError::Panicked(m)) => Poll::Ready(Err(m)),
            Err(e) => Poll::Ready(Err(e.to_string())),
        }
    }
}

/// Runs an electron's future with panics turned into [`TaskError::Panicked`].
pub(crate) async fn catch_future(f: crate::electron::TaskFuture) -> Result<Output, TaskError> {
    CatchPanic(f)
        .await
        .unwrap_or_else(|m| Err(TaskError::Panicked(m)))
}

// ---- hooks ----------------------------------------------------------------------------------

/// Runs `deps_bash` commands and `call_before` hooks.
pub(crate) fn run_before_hooks(def: &ElectronDef) -> Result<(), TaskError> {
    for cmd in def.deps_bash {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| TaskError::Hook(format!("deps_bash `{cmd}` could not start: {e}")))?;
        if !out.status.success() {
            return Err(TaskError::Hook(format!(
                "deps_bash `{cmd}` failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    for h in def.call_before {
        catch(|| (h.run)().map_err(TaskError::Hook))
            .map_err(|e| TaskError::Hook(format!("call_before `{}` failed: {e}", h.name)))?;
    }
    Ok(())
}

/// Runs `call_after` hooks.
pub(crate) fn run_after_hooks(def: &ElectronDef) -> Result<(), TaskError> {
    for h in def.call_after {
        catch(|| (h.run)().map_err(TaskError::Hook))
            .map_err(|e| TaskError::Hook(format!("call_after `{}` failed: {e}", h.name)))?;
    }
    Ok(())
}

// ---- cancellation ---------------------------------------------------------------------------

/// Cancellation requests of one run (and, through `parent`, of the runs above it).
pub(crate) struct CancelState {
    all: AtomicBool,
    nodes: Mutex<Vec<usize>>,
    any_node: AtomicBool,
    parent: Option<(Arc<CancelState>, usize)>,
    notify: Arc<Notify>,
}

impl CancelState {
    fn new(parent: Option<(Arc<CancelState>, usize)>) -> Self {
        let notify = parent
            .as_ref()
            .map(|(p, _)| p.notify.clone())
            .unwrap_or_default();
        CancelState {
            all: AtomicBool::new(false),
            nodes: Mutex::new(Vec::new()),
            any_node: AtomicBool::new(false),
            parent,
            notify,
        }
    }

    pub(crate) fn all_requested(&self) -> bool {
        self.all.load(Ordering::Acquire)
            || self
                .parent
                .as_ref()
                .is_some_and(|(p, n)| p.is_requested(*n))
    }

    pub(crate) fn is_requested(&self, node: usize) -> bool {
        self.all_requested()
            || (self.any_node.load(Ordering::Acquire) && self.nodes.lock().unwrap().contains(&node))
    }

    fn request_all(&self) {
        self.all.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn request_node(&self, node: usize) {
        self.nodes.lock().unwrap().push(node);
        self.any_node.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(crate) async fn wait(&self, node: usize) {
        loop {
            let n = self.notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.is_requested(node) {
                return;
            }
            n.await;
        }
    }
}

// ---- per-node state -------------------------------------------------------------------------

/// One attempt at running a node.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    /// Attempt number, from 1.
    pub number: u32,
    /// Offset from the dispatch start.
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

#[derive(Default)]
pub(crate) struct NodeExtra {
    pub attempts: Vec<Attempt>,
    pub error: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub job_handle: Option<JobHandle>,
    pub executor: Option<ExecutorRef>,
    pub sub: Option<Arc<Run>>,
}

pub(crate) struct NodeState {
    pending: AtomicU32,
    status: AtomicU8,
    /// Nanoseconds from the run's start, plus one (0 = not yet).
    start: AtomicU64,
    end: AtomicU64,
    pub value: OnceLock<Output>,
    pub extra: Mutex<Option<Box<NodeExtra>>>,
}

impl NodeState {
    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }
    pub(crate) fn times(&self) -> (Option<Duration>, Option<Duration>) {
        let f = |v: u64| (v > 0).then(|| Duration::from_nanos(v - 1));
        (
            f(self.start.load(Ordering::Acquire)),
            f(self.end.load(Ordering::Acquire)),
        )
    }
    /// Moves a node that has not started (NEW or PENDING) to `to`; false if it had already
    /// started or ended.
    fn leave_waiting(&self, to: u8) -> bool {
        self.status
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || self
                .status
                .compare_exchange(NEW, to, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
    fn extra<R>(&self, f: impl FnOnce(&mut NodeExtra) -> R) -> R {
        let mut g = self.extra.lock().unwrap();
        f(g.get_or_insert_with(Default::default))
    }
}

/// An executor resolved for one run.
pub(crate) struct Resolved {
    pub exec: Result<ExecutorRef, ExecutorError>,
    inline: bool,
    time_limit: Option<Duration>,
    retries: Option<u32>,
}

impl Resolved {
    fn new(sel: &ExecutorSel, config: &Config) -> Self {
        let exec = match sel {
            ExecutorSel::Instance(r) => Ok(r.clone()),
            ExecutorSel::Named(name) => config.executor(name),
        };
        let (inline, time_limit, retries) = match &exec {
            Ok(e) => (
                e.exec.runs_inline(),
                e.exec.base().time_limit,
                e.exec.base().retries,
            ),
            Err(_) => (false, None, None),
        };
        Resolved {
            exec,
            inline,
            time_limit,
            retries,
        }
    }
}

// ---- a run ----------------------------------------------------------------------------------

/// What a run needs besides its graph.
pub(crate) struct RunSpec<'a> {
    pub id: Uuid,
    pub config: Arc<Config>,
    pub handle: tokio::runtime::Handle,
    /// For a sublattice: the parent run and node.
    pub parent: Option<(Arc<Run>, u32)>,
    /// The parent's default executor, for a sublattice that names none.
    pub inherited_default: Option<ExecutorSel>,
    pub journal: Option<Arc<RunJournal>>,
    /// Stored outputs by fingerprint, for redispatch.
    pub reuse: Option<&'a std::collections::HashMap<[u8; 16], serde_json::Value>>,
}

/// One run of one graph: a dispatch, or a sublattice inside one.
pub(crate) struct Run {
    pub id: Uuid,
    pub graph: Graph,
    pub states: Box<[NodeState]>,
    /// Resolved executors: one per `graph.executors`, then the default.
    pub execs: Vec<Resolved>,
    remaining: AtomicUsize,
    total: usize,
    pub cancel: Arc<CancelState>,
    fail_fast: bool,
    pub started: Instant,
    pub started_wall: SystemTime,
    end: AtomicU64,
    pub status: AtomicU8,
    pub error: OnceLock<String>,
    failed: Mutex<Vec<u32>>,
    done: AtomicBool,
    done_notify: Notify,
    /// A `dispatch_sync` caller that helps run this run's pool nodes, while it is parked: woken
    /// when the run ends or queues pool nodes (see [`Run::help_until_done`]).
    helper: OnceLock<std::thread::Thread>,
    helper_parked: AtomicBool,
    pub handle: tokio::runtime::Handle,
    pub config: Arc<Config>,
    /// For a sublattice: the parent run and node, taken when the child finishes (so the
    /// parent ↔ child references do not keep each other alive).
    parent: Mutex<Option<(Arc<Run>, u32)>>,
    results_dir: OnceLock<PathBuf>,
    /// Where this run is recorded, if it is.
    pub journal: Option<Arc<RunJournal>>,
}

impl Run {
    /// Prepares a run of `graph`: resolves executors, moves parameter values into place and
    /// counts each node's pending inputs.
    pub(crate) fn new(mut graph: Graph, spec: RunSpec<'_>) -> Arc<Run> {
        let RunSpec {
            id,
            config,
            handle,
            parent,
            inherited_default,
            journal,
            reuse,
        } = spec;
        install_panic_hook();
        let default_sel = graph
            .default_executor
            .clone()
            .or(inherited_default)
            .unwrap_or_else(|| ExecutorSel::Named(config.sdk.default_executor.clone().into()));
        let mut execs: Vec<Resolved> = graph
            .executors
            .iter()
            .map(|s| Resolved::new(s, &config))
            .collect();
        execs.push(Resolved::new(&default_sel, &config));
        graph.default_executor = Some(default_sel);

        let n = graph.nodes.len();
        // Redispatch: nodes whose fingerprint has a stored output are not run again.
        let mut reused: Vec<Option<Output>> = Vec::new();
        if let Some(reuse) = reuse.filter(|r| !r.is_empty()) {
            let fps = crate::store::encode::encode(
                &graph,
                |i| match &graph.nodes[i].op {
                    Op::Param(Some(v)) => Some(v),
                    _ => None,
                },
                |_| None,
            )
            .fingerprints();
            reused = (0..n)
                .map(|i| match &graph.nodes[i].op {
                    Op::Param(_) => None,
                    _ => reuse.get(&fps[i]).map(|v| Output::new(v.clone())),
                })
                .collect();
        }
        let reused_flags: Vec<bool> = reused.iter().map(Option::is_some).collect();
        let is_reused = |i: usize| reused_flags.get(i).copied().unwrap_or(false);
        let mut states = Vec::with_capacity(n);
        let mut remaining = 0;
        #[allow(clippy::needless_range_loop)] // `i` indexes the graph, its rows and `reused`
        for i in 0..n {
            let pending = graph
                .inputs_of(i)
                .iter()
                .filter(|(src, _)| {
                    !matches!(graph.nodes[*src as usize].op, Op::Param(_))
                        && !is_reused(*src as usize)
                })
                .count() as u32;
            let (status, value) = match &mut graph.nodes[i].op {
                Op::Param(v) => (COMPLETED, v.take()),
                _ if is_reused(i) => (Status::Reused as u8, reused[i].take()),
                _ => {
                    remaining += 1;
                    (NEW, None)
                }
            };
            let value_lock = OnceLock::new();
            if let Some(v) = value {
                let _ = value_lock.set(v);
            }
            states.push(NodeState {
                pending: AtomicU32::new(pending),
                status: AtomicU8::new(status),
                start: AtomicU64::new(0),
                end: AtomicU64::new(0),
                value: value_lock,
                extra: Mutex::new(None),
            });
        }
        let cancel = Arc::new(CancelState::new(
            parent
                .as_ref()
                .map(|(p, node)| (p.cancel.clone(), *node as usize)),
        ));
        let fail_fast = graph.fail_fast || config.sdk.fail_fast;
        Arc::new(Run {
            id,
            graph,
            states: states.into_boxed_slice(),
            execs,
            remaining: AtomicUsize::new(remaining),
            total: remaining,
            cancel,
            fail_fast,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            end: AtomicU64::new(0),
            status: AtomicU8::new(RUNNING),
            error: OnceLock::new(),
            failed: Mutex::new(Vec::new()),
            done: AtomicBool::new(false),
            done_notify: Notify::new(),
            helper: OnceLock::new(),
            helper_parked: AtomicBool::new(false),
            handle,
            config,
            parent: Mutex::new(parent),
            results_dir: OnceLock::new(),
            journal,
        })
    }

    /// Schedules every node that has no pending inputs. With `keep_one`, one pool node is not
    /// queued but returned, for the caller to run (see [`Run::help_until_done`]).
    pub(crate) fn start(self: &Arc<Self>, keep_one: bool) -> Option<u32> {
        if self.remaining.load(Ordering::Acquire) == 0 {
            self.finish();
            return None;
        }
        let ready: Vec<u32> = (0..self.states.len() as u32)
            .filter(|&i| {
                let s = &self.states[i as usize];
                s.status.load(Ordering::Relaxed) == NEW && s.pending.load(Ordering::Relaxed) == 0
            })
            .collect();
        self.schedule(ready, keep_one)
    }

    /// Blocks the calling thread until the run has ended, running this run's pool nodes on it
    /// meanwhile: `first` (from [`Run::start`] with `keep_one`) and its continuations, then any
    /// of the run's nodes at the head of the pool's queue. So a small synchronous dispatch runs
    /// entirely on the caller's thread with no hand-off to a worker and back (each costs tens of
    /// microseconds where an idle core has to be woken), and a large one has one more thread.
    ///
    /// Before parking it spins briefly, since the last node usually ends within microseconds;
    /// parked, it is woken when the run ends or queues more pool nodes.
    pub(crate) fn help_until_done(self: &Arc<Self>, first: Option<u32>) {
        /// How long to look for work or the end before parking.
        const SPIN: Duration = Duration::from_micros(50);
        let pool = pool::global();
        let mut next = first;
        loop {
            if let Some(n) = next.take() {
                pool.run_chain(self, n);
            }
            if self.is_done() {
                return;
            }
            let found = pool::spin(SPIN, |checkpoint| {
                if checkpoint {
                    next = pool.take_for(self);
                }
                next.is_some() || self.is_done()
            });
            if found {
                continue;
            }
            // Park. Wakers set their state first and then look at `helper_parked`; here the flag
            // is set first and the state looked at after, both with full fences, so a wake-up
            // cannot fall between the look and the park (and `unpark` before `park` is kept).
            self.helper.get_or_init(std::thread::current);
            self.helper_parked.store(true, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            next = pool.take_for(self);
            if next.is_none() && !self.is_done() {
                std::thread::park_timeout(Duration::from_millis(100));
            }
            self.helper_parked.store(false, Ordering::SeqCst);
        }
    }

    /// Wakes a parked [`Run::help_until_done`] caller.
    fn wake_helper(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.helper_parked.load(Ordering::SeqCst)
            && let Some(t) = self.helper.get()
        {
            t.unpark();
        }
    }

    /// Where this dispatch keeps its files (worked out when first asked for).
    pub(crate) fn results_dir(&self) -> &std::path::Path {
        self.results_dir
            .get_or_init(|| self.config.results_dir().join(self.id.to_string()))
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64 + 1
    }

    pub(crate) fn end_offset(&self) -> Option<Duration> {
        let v = self.end.load(Ordering::Acquire);
        (v > 0).then(|| Duration::from_nanos(v - 1))
    }

    /// `(finished, total)` nodes that run (parameters and reused nodes excluded).
    pub(crate) fn progress(&self) -> (usize, usize) {
        let total = self.total;
        (
            total - self.remaining.load(Ordering::Relaxed).min(total),
            total,
        )
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    pub(crate) async fn wait_done(&self) {
        loop {
            let n = self.done_notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.is_done() {
                return;
            }
            n.await;
        }
    }

    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }

    /// The name of the executor in slot `slot` (a node's `executor` field).
    pub(crate) fn executor_name(&self, slot: u32) -> Option<String> {
        let r = if slot == NO_EXECUTOR {
            self.execs.last()
        } else {
            self.execs.get(slot as usize)
        }?;
        match &r.exec {
            Ok(e) => Some(e.short_name().to_string()),
            Err(_) => {
                let sel = if slot == NO_EXECUTOR {
                    self.graph.default_executor.as_ref()
                } else {
                    self.graph.executors.get(slot as usize)
                };
                match sel? {
                    ExecutorSel::Named(n) => Some(n.to_string()),
                    ExecutorSel::Instance(r) => Some(r.short_name().to_string()),
                }
            }
        }
    }

    /// The executor slot of node `i`.
    fn exec_of(&self, i: usize) -> &Resolved {
        let e = self.graph.nodes[i].executor;
        if e == NO_EXECUTOR {
            self.execs.last().expect("default executor")
        } else {
            &self.execs[e as usize]
        }
    }

    /// Whether node `i` may run directly on the worker pool.
    fn runs_on_pool(&self, i: usize) -> bool {
        match &self.graph.nodes[i].op {
            Op::Internal(_) => true,
            Op::Param(_) => true,
            Op::Electron(def) => {
                matches!(def.body, Body::Sync(_)) && {
                    let r = self.exec_of(i);
                    r.inline && def.time_limit.or(r.time_limit).is_none()
                }
            }
        }
    }

    /// Schedules ready nodes; with `keep_one`, returns one pool node for the caller to run next.
    fn schedule(self: &Arc<Self>, ready: Vec<u32>, keep_one: bool) -> Option<u32> {
        let mut next = None;
        let mut pooled = Vec::new();
        for n in ready {
            if self.runs_on_pool(n as usize) {
                if keep_one && next.is_none() {
                    next = Some(n);
                } else {
                    pooled.push(n);
                }
            } else {
                let run = self.clone();
                self.handle.spawn(async move { run.run_async(n).await });
            }
        }
        if !pooled.is_empty() {
            pool::global().push(self, pooled);
            self.wake_helper();
        }
        next
    }

    /// Claims node `i` for running; false if it was cancelled or will not run. `at` is the
    /// time stamp to record as its start ([`Run::now`]), 0 to read the clock.
    fn claim(self: &Arc<Self>, i: u32, at: u64) -> bool {
        if self.cancel.is_requested(i as usize) {
            self.cancel_waiting(i);
            return false;
        }
        let st = &self.states[i as usize];
        let ok = st.leave_waiting(RUNNING);
        if ok {
            let at = if at == 0 { self.now() } else { at };
            st.start.store(at, Ordering::Release);
        }
        ok
    }

    /// The data inputs of node `i`, in slot order.
    fn gather(&self, i: usize) -> Args {
        let inputs = self.graph.inputs_of(i);
        let mut values = Vec::with_capacity(inputs.len());
        for &(src, slot) in inputs {
            if slot == WAIT_SLOT {
                break;
            }
            let v = self.states[src as usize]
                .value
                .get()
                .expect("an input's value is set before its consumer runs");
            values.push(v.clone());
        }
        Args::new(values)
    }

    /// Runs a pool node and returns the next one to run on this thread, with the time stamp
    /// this one ended at (the next one's start: a chain reads the clock once per node). `at` is
    /// the node's start stamp, 0 to read the clock.
    pub(crate) fn run_on_pool(self: &Arc<Self>, i: u32, at: u64) -> Option<(u32, u64)> {
        if !self.claim(i, at) {
            return None;
        }
        let mut args = self.gather(i as usize);
        let result = match &self.graph.nodes[i as usize].op {
            Op::Internal(op) => catch(|| (op.run)(&mut args)),
            Op::Electron(def) => {
                let Body::Sync(f) = def.body else {
                    unreachable!("only sync electrons run on the pool")
                };
                let retries = def
                    .retries
                    .or(self.exec_of(i as usize).retries)
                    .unwrap_or(0);
                let mut attempt = 1;
                loop {
                    // The first attempt starts when the node does (one clock read fewer).
                    let t0 = if attempt == 1 {
                        self.states[i as usize].start.load(Ordering::Relaxed)
                    } else {
                        self.now()
                    };
                    let r = run_before_hooks(def)
                        .and_then(|_| catch(|| f(&mut args)))
                        .and_then(|v| run_after_hooks(def).map(|_| v));
                    match r {
                        Ok(v) => {
                            if attempt > 1 {
                                self.record_attempt(i, attempt, t0, None);
                            }
                            break Ok(v);
                        }
                        Err(e) => {
                            self.record_attempt(i, attempt, t0, Some(e.to_string()));
                            if attempt > retries || self.cancel.is_requested(i as usize) {
                                break Err(e);
                            }
                            attempt += 1;
                        }
                    }
                }
            }
            Op::Param(_) => unreachable!("parameters never run"),
        };
        let result = result.map_err(|e| e.to_string());
        let end = self.now();
        self.complete(i, result, true, end).map(|n| (n, end))
    }

    fn record_attempt(&self, i: u32, number: u32, t0: u64, error: Option<String>) {
        let t1 = self.now();
        self.states[i as usize].extra(|x| {
            x.attempts.push(Attempt {
                number,
                start: Duration::from_nanos(t0 - 1),
                end: Duration::from_nanos(t1 - 1),
                error,
            })
        });
    }

    /// Records a node's outcome and schedules its newly ready dependants.
    fn complete(
        self: &Arc<Self>,
        i: u32,
        result: Result<Output, String>,
        keep_one: bool,
        end: u64,
    ) -> Option<u32> {
        let st = &self.states[i as usize];
        st.end.store(end, Ordering::Release);
        let next = match result {
            Ok(v) => {
                let _ = st.value.set(v);
                st.status.store(COMPLETED, Ordering::Release);
                let mut ready = Vec::new();
                for &d in self.graph.deps_of(i as usize) {
                    let ds = &self.states[d as usize];
                    if ds.pending.fetch_sub(1, Ordering::AcqRel) == 1
                        && ds
                            .status
                            .compare_exchange(NEW, PENDING, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                    {
                        ready.push(d);
                    }
                }
                if ready.is_empty() {
                    None
                } else {
                    self.schedule(ready, keep_one)
                }
            }
            Err(e) => {
                let cancelled = self.cancel.is_requested(i as usize) && e == "cancelled";
                st.extra(|x| x.error = Some(e));
                if cancelled {
                    st.status.store(CANCELLED, Ordering::Release);
                    self.skip_dependants(i, CANCELLED);
                } else {
                    st.status.store(FAILED, Ordering::Release);
                    self.failed.lock().unwrap().push(i);
                    self.skip_dependants(i, NOT_RUN);
                    if self.fail_fast {
                        self.cancel.request_all();
                        self.cancel_pending();
                    }
                }
                None
            }
        };
        self.node_done();
        next
    }

    /// Marks every node downstream of `i` that has not started as `status`.
    fn skip_dependants(self: &Arc<Self>, i: u32, status: u8) {
        let mut stack = vec![i];
        while let Some(n) = stack.pop() {
            for &d in self.graph.deps_of(n as usize) {
                if self.states[d as usize].leave_waiting(status) {
                    stack.push(d);
                    self.node_done();
                }
            }
        }
    }

    /// Fail-fast / whole-dispatch cancel: every node that has not started is cancelled.
    fn cancel_pending(self: &Arc<Self>) {
        let now = self.now();
        for st in self.states.iter() {
            if st.leave_waiting(CANCELLED) {
                st.end.store(now, Ordering::Release);
                self.node_done();
            }
        }
    }

    /// Requests cancellation of the whole run.
    pub(crate) fn cancel_all(self: &Arc<Self>) {
        self.cancel.request_all();
        self.cancel_pending();
        for st in self.states.iter() {
            if let Some(sub) = st
                .extra
                .lock()
                .unwrap()
                .as_ref()
                .and_then(|x| x.sub.clone())
            {
                sub.cancel_pending();
            }
        }
    }

    /// Requests cancellation of one node (and so of its dependants).
    pub(crate) fn cancel_node(self: &Arc<Self>, i: usize) {
        if i >= self.states.len() {
            return;
        }
        self.cancel.request_node(i);
        self.cancel_waiting(i as u32);
    }

    /// Cancels node `i` if it has not started, and its dependants with it.
    fn cancel_waiting(self: &Arc<Self>, i: u32) {
        let st = &self.states[i as usize];
        if st.leave_waiting(CANCELLED) {
            st.end.store(self.now(), Ordering::Release);
            self.skip_dependants(i, CANCELLED);
            self.node_done();
        }
    }

    fn node_done(self: &Arc<Self>) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    /// Decides the run's status once every node is terminal, wakes waiters and, for a
    /// sublattice, completes the parent node.
    fn finish(self: &Arc<Self>) {
        self.end.store(self.now(), Ordering::Release);
        let failed = self.failed.lock().unwrap().clone();
        let status = if !failed.is_empty() {
            let mut msg = String::from("The following tasks failed:");
            for f in &failed {
                let name = self.graph.nodes[*f as usize].op.name();
                msg.push_str(&format!("\n{f}: {name}"));
                if let Some(e) = self.states[*f as usize]
                    .extra
                    .lock()
                    .unwrap()
                    .as_ref()
                    .and_then(|x| x.error.clone())
                {
                    msg.push_str(&format!(": {}", e.lines().next().unwrap_or("")));
                }
            }
            let _ = self.error.set(msg);
            FAILED
        } else if self.states[self.graph.output as usize]
            .value
            .get()
            .is_none()
        {
            let _ = self.error.set("The dispatch was cancelled".to_string());
            CANCELLED
        } else {
            COMPLETED
        };
        self.status.store(status, Ordering::Release);
        self.done.store(true, Ordering::Release);
        self.done_notify.notify_waiters();
        self.wake_helper();
        if let Some(j) = &self.journal {
            j.wake();
        }
        let parent = self.parent.lock().unwrap().take();
        if let Some((parent, node)) = parent {
            let result = match status {
                COMPLETED => Ok(self.states[self.graph.output as usize]
                    .value
                    .get()
                    .expect("output set")
                    .clone()),
                CANCELLED => Err("cancelled".to_string()),
                _ => Err(format!(
                    "sublattice `{}` failed: {}",
                    self.graph.name,
                    self.error.get().map(String::as_str).unwrap_or("")
                )),
            };
            let next = parent.complete(node, result, false, parent.now());
            debug_assert!(next.is_none());
        }
    }

    /// Runs a node on the async runtime: executors, time limits, retries, cancellation,
    /// sublattices.
    async fn run_async(self: Arc<Self>, i: u32) {
        let Op::Electron(def) = &self.graph.nodes[i as usize].op else {
            unreachable!("internal nodes always run on the pool")
        };
        let def = *def;
        if !self.claim(i, 0) {
            return;
        }
        let mut args = self.gather(i as usize);
        if let Body::Sublattice(build) = def.body {
            match catch(|| build(&mut args)) {
                Ok(graph) => {
                    let journal = self.journal.as_ref().map(|j| j.child(i));
                    let child = Run::new(
                        graph,
                        RunSpec {
                            id: self.id,
                            config: self.config.clone(),
                            handle: self.handle.clone(),
                            parent: Some((self.clone(), i)),
                            inherited_default: self.graph.default_executor.clone(),
                            journal: journal.clone(),
                            reuse: None,
                        },
                    );
                    self.states[i as usize].extra(|x| x.sub = Some(child.clone()));
                    if let Some(j) = &journal {
                        j.register(&child);
                    }
                    child.start(false);
                }
                Err(e) => {
                    self.complete_async(i, Err(format!("building the sublattice failed: {e}")));
                }
            }
            return;
        }
        let resolved = self.exec_of(i as usize);
        let exec = match &resolved.exec {
            Ok(e) => e.clone(),
            Err(e) => {
                self.complete_async(i, Err(e.to_string()));
                return;
            }
        };
        self.states[i as usize].extra(|x| x.executor = Some(exec.clone()));
        let retries = def.retries.or(resolved.retries).unwrap_or(0);
        let time_limit = def.time_limit.or(resolved.time_limit);
        let mut attempt = 1;
        let result = loop {
            let t0 = self.now();
            let ctx = TaskContext {
                inner: Arc::new(CtxInner {
                    dispatch_id: self.id,
                    node_id: i as usize,
                    node_name: def.name,
                    attempt,
                    results_dir: self.results_dir().to_path_buf(),
                    cancel: self.cancel.clone(),
                    job_handle: Mutex::new(None),
                    streams: Mutex::new(None),
                }),
            };
            let task = Task {
                def,
                args: Args::new(args.values.clone()),
            };
            let r = CatchPanic(Box::pin(attempt_once(&exec, task, &ctx, time_limit)))
                .await
                .unwrap_or_else(|m| {
                    Err(ExecutorError::Failed(format!(
                        "executor `{}` panicked: {m}",
                        exec.short_name()
                    )))
                });
            if let Some((out, err)) = ctx.inner.streams.lock().unwrap().take() {
                if let Err(e) = write_streams_to_file(&out, &err, exec.exec.base()) {
                    tracing_warn(&format!("cannot write the task's streams: {e}"));
                }
                self.states[i as usize].extra(|x| {
                    x.stdout.push_str(&out);
                    x.stderr.push_str(&err);
                });
            }
            if let Some(h) = ctx.job_handle() {
                self.states[i as usize].extra(|x| x.job_handle = Some(h));
            }
            match r {
                Ok(v) => {
                    self.record_attempt(i, attempt, t0, None);
                    break Ok(v);
                }
                Err(e) => {
                    self.record_attempt(i, attempt, t0, Some(e.to_string()));
                    if !e.is_retryable()
                        || attempt > retries
                        || self.cancel.is_requested(i as usize)
                    {
                        break Err(e.to_string());
                    }
                    attempt += 1;
                }
            }
        };
        self.complete_async(i, result);
    }

    fn complete_async(self: &Arc<Self>, i: u32, result: Result<Output, String>) {
        let next = self.complete(i, result, false, self.now());
        debug_assert!(next.is_none());
    }
}

fn tracing_warn(msg: &str) {
    eprintln!("covalent: warning: {msg}");
}

/// One attempt on an executor: setup, run (bounded by the time limit and cancellation),
/// teardown.
async fn attempt_once(
    exec: &ExecutorRef,
    task: Task,
    ctx: &TaskContext,
    time_limit: Option<Duration>,
) -> Result<Output, ExecutorError> {
    let e = &exec.exec;
    let work = async {
        e.setup(ctx).await?;
        let r = e.run(task, ctx).await;
        let t = e.teardown(ctx).await;
        let v = r?;
        t?;
        Ok(v)
    };
    let limited = async {
        match time_limit {
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(r) => r,
                Err(_) => Err(ExecutorError::TimedOut(limit)),
            },
            None => work.await,
        }
    };
    let r = tokio::select! {
        r = limited => r,
        _ = ctx.cancelled() => Err(ExecutorError::Cancelled),
    };
    if matches!(
        r,
        Err(ExecutorError::TimedOut(_)) | Err(ExecutorError::Cancelled)
    ) {
        let h = ctx.job_handle();
        if let Err(err) = e.cancel(ctx, h.as_ref()).await {
            tracing_warn(&format!("cancelling node {} failed: {err}", ctx.node_id()));
        }
    }
    r
}
