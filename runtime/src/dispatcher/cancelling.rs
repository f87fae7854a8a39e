//! Cancel requests applied to a run: the whole run (and its sublattices), or one node and so
//! its dependants. Nodes that have not started end CANCELLED here; running ones see the request
//! through their cancellation token and are cancelled through their executor.
//!
//! This module owns what a request does to waiting nodes; the tokens are `crate::cancel`'s.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{ErrorKind, NodeError};
use crate::graph::Op;

use super::attempt::BODY_GRACE;
use super::run::Run;
use super::state::{CANCELLED, ENDING, RUNNING};

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
        self.cancel_pending_below();
        self.give_up_running_later();
    }

    /// Cancels the nodes that have not started, here and in every sublattice run below.
    fn cancel_pending_below(self: &Arc<Self>) {
        self.cancel_pending();
        for st in self.states.iter() {
            if let Some(sub) = st.read_extra(|x| x.and_then(|x| x.sub.clone())) {
                sub.cancel_pending_below();
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
        self.give_up_running_later();
    }

    /// After a cancel request: a sync electron on the pool cannot be interrupted, so one whose
    /// cancellation was requested and that has not returned within [`BODY_GRACE`] (time to
    /// notice `covalent::cancelled()`) is given up: its node ends CANCELLED now, here and in
    /// the sublattice runs below, and its thread is replaced in the pool.
    pub(super) fn give_up_running_later(self: &Arc<Self>) {
        let run = self.clone();
        self.handle.spawn(async move {
            tokio::time::sleep(BODY_GRACE).await;
            run.give_up_running();
        });
    }

    fn give_up_running(self: &Arc<Self>) {
        for (i, st) in self.states.iter().enumerate() {
            if let Some(sub) = st.read_extra(|x| x.and_then(|x| x.sub.clone())) {
                sub.give_up_running();
            }
            if st.status.load(Ordering::Acquire) != RUNNING
                || !matches!(self.graph.nodes[i].op, Op::Electron(_))
                || !self.runs_on_pool(i)
                || !self.cancel.is_requested(i)
                || st
                    .status
                    .compare_exchange(RUNNING, ENDING, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            st.end.store(self.now(), Ordering::Release);
            st.extra(|x| {
                x.body_still_runs = true;
                x.error = Some(NodeError::new(
                    ErrorKind::Cancelled,
                    format!(
                        "cancelled while running; its thread could not be stopped and still runs the electron (a thread cannot be killed), whose result will be discarded: poll `covalent::cancelled()` in the electron to stop within {} ms, or run it with `executor = \"process\"` for a hard kill",
                        BODY_GRACE.as_millis()
                    ),
                ))
            });
            st.status.store(CANCELLED, Ordering::Release);
            super::schedule::pool().given_up();
            self.skip_dependants(i as u32, CANCELLED);
            self.node_done();
        }
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
