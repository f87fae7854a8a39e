//! Cancellation tokens: the requests made of one run (the whole run, or chosen nodes), and,
//! through a parent link, of the runs above a sublattice. Running tasks wait on them through
//! their `TaskContext`.
//!
//! This module owns the flags and the wake-ups; what a cancelled node becomes is the
//! dispatcher's business.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Cancellation requests of one run (and, through `parent`, of the runs above it).
pub(crate) struct CancelState {
    all: AtomicBool,
    nodes: Mutex<Vec<usize>>,
    any_node: AtomicBool,
    parent: Option<(Arc<CancelState>, usize)>,
    notify: Arc<Notify>,
}

impl CancelState {
    /// The requests of a run; a sublattice's run names its parent's state and node.
    pub(crate) fn new(parent: Option<(Arc<CancelState>, usize)>) -> Self {
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

    /// Whether the whole run (or the parent node of a sublattice) is to be cancelled.
    pub(crate) fn all_requested(&self) -> bool {
        self.all.load(Ordering::Acquire)
            || self
                .parent
                .as_ref()
                .is_some_and(|(p, n)| p.is_requested(*n))
    }

    /// Whether node `node` is to be cancelled.
    pub(crate) fn is_requested(&self, node: usize) -> bool {
        self.all_requested()
            || (self.any_node.load(Ordering::Acquire) && self.nodes.lock().unwrap().contains(&node))
    }

    /// Requests cancellation of the whole run.
    pub(crate) fn request_all(&self) {
        self.all.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Requests cancellation of one node.
    pub(crate) fn request_node(&self, node: usize) {
        self.nodes.lock().unwrap().push(node);
        self.any_node.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Completes when cancellation of `node` is requested.
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

/// What [`cancelled`] reads on a thread running an electron's body: the run's requests for
/// its node, and (for an attempt with a time limit) whether the attempt was given up.
pub(crate) struct StopToken {
    pub(crate) cancel: Arc<CancelState>,
    pub(crate) node: usize,
    pub(crate) given_up: Option<Arc<AtomicBool>>,
}

impl StopToken {
    fn stop(&self) -> bool {
        self.given_up
            .as_ref()
            .is_some_and(|g| g.load(Ordering::Acquire))
            || self.cancel.is_requested(self.node)
    }
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<StopToken>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (an electron's body) with `token` as what [`cancelled`] reads on this thread.
pub(crate) fn with_token<R>(token: StopToken, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<StopToken>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.borrow_mut().replace(token)));
    f()
}

/// Whether the electron running on this thread should stop: its dispatch or its node was
/// cancelled, or its attempt ran past its `time_limit`.
///
/// A thread cannot be killed, so a synchronous electron on the `local` executor that runs for a
/// long time should poll this now and then and return early when it turns true (its return
/// value is then discarded). An electron that does not poll it keeps its thread busy until it
/// returns, although its node and dispatch end on time. For a hard stop, run the electron with
/// `executor = "process"`: its process group is killed. Always `false` outside an electron's
/// body, and in an `async fn` electron (which is stopped at its next `.await` instead).
///
/// ```
/// use covalent::prelude::*;
///
/// #[electron(time_limit = "50ms")]
/// fn search(limit: u64) -> u64 {
///     let mut n = 0;
///     while n < limit {
///         if covalent::cancelled() {
///             break; // the node has ended already: stop using the core
///         }
///         n += 1;
///     }
///     n
/// }
///
/// #[lattice]
/// fn flow() -> u64 {
///     search(u64::MAX)
/// }
///
/// # let config = covalent::Config::parse("[sdk]\nrecord = false\nprogress = false\n",
/// #     std::path::Path::new("covalent.toml")).unwrap();
/// let r = covalent::dispatch_sync(flow().with_config(config))?;
/// assert_eq!(r.status(), Status::Failed);
/// let node = r.nodes().find(|n| n.name() == "search").unwrap();
/// assert_eq!(node.error_kind(), Some(covalent::ErrorKind::TimedOut));
/// // The body saw the time-out and returned: its thread is free again.
/// assert!(!node.error().unwrap().contains("could not be stopped"));
/// # Ok::<(), covalent::Error>(())
/// ```
pub fn cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(StopToken::stop))
}
