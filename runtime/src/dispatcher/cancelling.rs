//! Cancel requests applied to a run: the whole run (and its sublattices), or one node and so
//! its dependants. Nodes that have not started end CANCELLED here; running ones see the request
//! through their cancellation token and are cancelled through their executor.
//!
//! This module owns what a request does to waiting nodes; the tokens are `crate::cancel`'s.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::run::Run;
use super::state::CANCELLED;

impl Run {
    /// Fail-fast / whole-dispatch cancel: every node that has not started is cancelled.
    pub(super) fn cancel_pending(self: &Arc<Self>) {
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
            if let Some(sub) = st.read_extra(|x| x.and_then(|x| x.sub.clone())) {
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
    pub(super) fn cancel_waiting(self: &Arc<Self>, i: u32) {
        let st = &self.states[i as usize];
        if st.leave_waiting(CANCELLED) {
            st.end.store(self.now(), Ordering::Release);
            self.skip_dependants(i, CANCELLED);
            self.node_done();
        }
    }
}
