//! One run of one graph (a dispatch, or a sublattice inside one): its construction (executors
//! resolved, parameters and reused outputs moved into place, pending inputs counted) and the
//! read-only view that observers, results and records use.
//!
//! It also holds each node's state (status, pending-input counter, times, output, and the
//! rarely needed rest boxed on demand) and the [`RunObserver`] trait through which recorders
//! (the store's journal) follow a run: the dispatcher calls it when a run starts, when it ends
//! and when a sublattice run starts under one of its nodes; everything else an observer reads
//! from the view here, on its own schedule.
//!
//! This module owns the run's and the nodes' fields; they are private to the dispatcher,
//! everything outside reads them through the methods here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::cancel::CancelState;
use crate::config::Config;
use crate::error::NodeError;
use crate::executor::{ExecutorRef, ExecutorSel, JobHandle};
use crate::graph::{Graph, NO_EXECUTOR, Op};
use crate::status::Status;
use crate::value::Output;

use super::resolve::Resolved;
use super::state::{Attempt, COMPLETED, ENDING, NEW, PENDING, RUNNING};

/// Follows one run (a dispatch's, or a sublattice's inside it).
pub(crate) trait RunObserver: Send + Sync + 'static {
    /// The run is about to schedule its first nodes.
    fn started(self: Arc<Self>, run: &Arc<Run>);
    /// Every node of the run is final and its status is decided.
    fn finished(&self, run: &Run);
    /// The observer for the sublattice run under node `node`.
    fn child(&self, node: u32) -> Arc<dyn RunObserver>;
    /// A running node's details changed without its status (its job handle was set).
    fn node_changed(&self, node: u32);
}

/// What a node has beyond its hot state, allocated when first needed.
#[derive(Default)]
pub(crate) struct NodeExtra {
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) error: Option<NodeError>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) job_handle: Option<JobHandle>,
    /// File transfers and the resource assignment, for the nodes that have them (boxed: a
    /// recorded node's extras stay small without them).
    pub(crate) more: Option<Box<NodeMore>>,
    pub(crate) executor: Option<ExecutorRef>,
    pub(crate) sub: Option<Arc<Run>>,
    /// An attempt was given up while its body kept running on a thread that cannot be stopped.
    pub(crate) body_still_runs: bool,
}

/// The rarer parts of a node's extras.
#[derive(Default)]
pub(crate) struct NodeMore {
    /// File transfers of every attempt, in order.
    pub(crate) transfers: Vec<crate::files::TransferRecord>,
    /// What the node was admitted with by its declared needs.
    pub(crate) assignment: Option<crate::resources::Assignment>,
}

impl NodeExtra {
    /// The rarer parts, made on first use.
    pub(crate) fn more(&mut self) -> &mut NodeMore {
        self.more.get_or_insert_with(Default::default)
    }
}

/// One node's state.
pub(crate) struct NodeState {
    pub(super) pending: AtomicU32,
    pub(super) status: AtomicU8,
    /// Nanoseconds from the run's start, plus one (0 = not yet).
    pub(super) start: AtomicU64,
    pub(super) end: AtomicU64,
    pub(super) value: OnceLock<Output>,
    extra: Mutex<Option<Box<NodeExtra>>>,
}

impl NodeState {
    pub(super) fn new(pending: u32, status: u8, value: Option<Output>) -> Self {
        let value_lock = OnceLock::new();
        if let Some(v) = value {
            let _ = value_lock.set(v);
        }
        NodeState {
            pending: AtomicU32::new(pending),
            status: AtomicU8::new(status),
            start: AtomicU64::new(0),
            end: AtomicU64::new(0),
            value: value_lock,
            extra: Mutex::new(None),
        }
    }

    /// The node's status now.
    pub(crate) fn status(&self) -> Status {
        match self.status.load(Ordering::Acquire) {
            ENDING => Status::Running,
            s => Status::from_u8(s),
        }
    }

    /// Start and end, as offsets from the run's start.
    pub(crate) fn times(&self) -> (Option<Duration>, Option<Duration>) {
        let f = |v: u64| (v > 0).then(|| Duration::from_nanos(v - 1));
        (
            f(self.start.load(Ordering::Acquire)),
            f(self.end.load(Ordering::Acquire)),
        )
    }

    /// The node's output, once it has one.
    pub(crate) fn value(&self) -> Option<&Output> {
        self.value.get()
    }

    /// Reads the node's extra state (`None` if it never needed any).
    pub(crate) fn read_extra<R>(&self, f: impl FnOnce(Option<&NodeExtra>) -> R) -> R {
        f(self.extra.lock().unwrap().as_deref())
    }

    /// Moves a node that has not started (NEW or PENDING) to `to`; false if it had already
    /// started or ended.
    pub(super) fn leave_waiting(&self, to: u8) -> bool {
        self.status
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || self
                .status
                .compare_exchange(NEW, to, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Changes the node's extra state, allocating it first if needed.
    pub(super) fn extra<R>(&self, f: impl FnOnce(&mut NodeExtra) -> R) -> R {
        let mut g = self.extra.lock().unwrap();
        f(g.get_or_insert_with(Default::default))
    }
}

/// What a run needs besides its graph.
pub(crate) struct RunSpec {
    pub(crate) id: Uuid,
    pub(crate) config: Arc<Config>,
    pub(crate) handle: tokio::runtime::Handle,
    /// For a sublattice: the parent run and node.
    pub(crate) parent: Option<(Arc<Run>, u32)>,
    /// The parent's default executor, for a sublattice that names none.
    pub(crate) inherited_default: Option<ExecutorSel>,
    /// Who records the run, if anyone.
    pub(crate) observer: Option<Arc<dyn RunObserver>>,
    /// For redispatch: per node, the earlier output to take instead of running it (empty: none).
    pub(crate) reused: Vec<Option<Output>>,
    /// For a resume: per node, the job handle of the attempt an earlier process left running,
    /// to follow instead of submitting the node again (empty: none).
    pub(crate) adopt: HashMap<u32, JobHandle>,
}

/// One run of one graph: a dispatch, or a sublattice inside one.
pub(crate) struct Run {
    pub(super) id: Uuid,
    pub(super) graph: Graph,
    pub(super) states: Box<[NodeState]>,
    /// Resolved executors: one per `graph.executors`, then the default.
    pub(super) execs: Vec<Resolved>,
    pub(super) remaining: AtomicUsize,
    pub(super) total: usize,
    pub(super) cancel: Arc<CancelState>,
    pub(super) fail_fast: bool,
    pub(super) started: Instant,
    pub(super) started_wall: SystemTime,
    pub(super) end: AtomicU64,
    pub(super) status: AtomicU8,
    pub(super) error: OnceLock<String>,
    pub(super) failed: Mutex<Vec<u32>>,
    pub(super) done: AtomicBool,
    pub(super) done_notify: Notify,
    /// A `dispatch_sync` caller that helps run this run's pool nodes, while it is parked: woken
    /// when the run ends or queues pool nodes.
    pub(super) helper: OnceLock<std::thread::Thread>,
    pub(super) helper_parked: AtomicBool,
    pub(super) handle: tokio::runtime::Handle,
    pub(super) config: Arc<Config>,
    /// For a sublattice: the parent run and node, taken when the child finishes (so the
    /// parent ↔ child references do not keep each other alive).
    pub(super) parent: Mutex<Option<(Arc<Run>, u32)>>,
    pub(super) results_dir: OnceLock<PathBuf>,
    pub(super) observer: Option<Arc<dyn RunObserver>>,
    /// Attempts to re-attach to (see [`RunSpec::adopt`]), taken when their node starts.
    adopt: Option<Mutex<HashMap<u32, JobHandle>>>,
}

impl Run {
    /// Prepares a run of `graph`: resolves executors, moves parameter values and reused outputs
    /// into place and counts each node's pending inputs.
    pub(crate) fn new(mut graph: Graph, spec: RunSpec) -> Arc<Run> {
        let RunSpec {
            id,
            config,
            handle,
            parent,
            inherited_default,
            observer,
            mut reused,
            adopt,
        } = spec;
        crate::invoke::install_panic_hook();
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
        // Taken out of `reused` as the nodes are set up, so whether a node is reused is read
        // from these flags (a later node's input may be an earlier, already taken, one).
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
            states.push(NodeState::new(pending, status, value));
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
            observer,
            adopt: (!adopt.is_empty()).then(|| Mutex::new(adopt)),
        })
    }

    // ---- the read-only view ------------------------------------------------------------------

    /// The dispatch id (a sublattice's run has its dispatch's).
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    /// The graph being run.
    pub(crate) fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The state of node `i`.
    pub(crate) fn node(&self, i: usize) -> &NodeState {
        &self.states[i]
    }

    /// Every node's state, by node id.
    pub(crate) fn nodes(&self) -> &[NodeState] {
        &self.states
    }

    /// The lattice's output, once the output node has one.
    pub(crate) fn output(&self) -> Option<&Output> {
        self.states[self.graph.output as usize].value()
    }

    /// When the run started (wall clock).
    pub(crate) fn started_wall(&self) -> SystemTime {
        self.started_wall
    }

    /// The run's configuration.
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The async runtime the run uses.
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Why the run failed or was cancelled.
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.get().map(String::as_str)
    }

    /// Where this dispatch keeps its files (worked out when first asked for).
    pub(crate) fn results_dir(&self) -> &std::path::Path {
        self.results_dir
            .get_or_init(|| self.config.results_dir().join(self.id.to_string()))
    }

    /// A time stamp: nanoseconds since the run started, plus one (0 means "not yet").
    pub(super) fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64 + 1
    }

    /// When the run ended, as an offset from its start.
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

    /// Whether every node is final and the status decided.
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Completes when the run is done.
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

    /// The run's status now.
    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }
}

impl Run {
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

    /// The job handle of the attempt an earlier process left running for node `i`, if this run
    /// is to follow it (once).
    pub(super) fn take_adopted(&self, i: u32) -> Option<JobHandle> {
        self.adopt.as_ref()?.lock().unwrap().remove(&i)
    }

    /// The executor of node `i`.
    pub(super) fn exec_of(&self, i: usize) -> &Resolved {
        let e = self.graph.nodes[i].executor;
        if e == NO_EXECUTOR {
            self.execs.last().expect("default executor")
        } else {
            &self.execs[e as usize]
        }
    }
    /// The executor node `i` runs on, if it resolved.
    pub(crate) fn resolved_executor(&self, i: usize) -> Option<&ExecutorRef> {
        self.exec_of(i).exec.as_ref().ok()
    }
}
