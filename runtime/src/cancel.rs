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
