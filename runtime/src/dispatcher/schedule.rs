//! Scheduling: which nodes are ready, where each runs (the worker pool or the async runtime),
//! claiming a node, the pool path, recording an outcome and propagating it to dependants
//! (counters, NOT_RUN, fail-fast), and deciding the run's status at its end.
//!
//! This module owns the node state transitions of a running node; attempts and retries are
//! `attempt.rs`'s, cancel requests `cancelling.rs`'s.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use crate::electron::{Args, Body};
use crate::error::{ErrorKind, NodeError};
use crate::graph::{Op, WAIT_SLOT};
use crate::invoke;
use crate::pool::{self, Pool};
use crate::value::Output;

use super::run::Run;
use super::state::{CANCELLED, COMPLETED, ENDING, FAILED, NEW, NOT_RUN, PENDING, RUNNING};

/// The process-wide worker pool for every run's pool nodes.
static POOL: LazyLock<Arc<Pool<Run>>> = LazyLock::new(pool::start);

/// The process-wide worker pool.
pub(super) fn pool() -> &'static Arc<Pool<Run>> {
    &POOL
}

impl pool::Job for Run {
    fn run(this: &Arc<Self>, node: u32, at: u64) -> Option<(u32, u64)> {
        this.run_on_pool(node, at)
    }
}

impl Run {
    /// Schedules every node that has no pending inputs (after telling the observer the run
    /// starts). With `keep_one`, one pool node is not queued but returned, for the caller to
    /// run (see [`Run::help_until_done`]).
    pub(crate) fn start(self: &Arc<Self>, keep_one: bool) -> Option<u32> {
        if let Some(o) = &self.observer {
            o.clone().started(self);
        }
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

    /// Whether node `i` may run directly on the worker pool.
    pub(super) fn runs_on_pool(&self, i: usize) -> bool {
        match &self.graph.nodes[i].op {
            Op::Internal(_) => true,
            Op::Param(_) => true,
            Op::Electron(def) => {
                matches!(def.body, Body::Sync(_)) && def.pool.is_none() && def.needs.is_empty() && {
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
            pool().push(self, pooled);
            self.wake_helper();
        }
        next
    }

    /// Claims node `i` for running; false if it was cancelled or will not run. `at` is the
    /// time stamp to record as its start ([`Run::now`]), 0 to read the clock.
    pub(super) fn claim(self: &Arc<Self>, i: u32, at: u64) -> bool {
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
    pub(super) fn gather(&self, i: usize) -> Args {
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
    fn run_on_pool(self: &Arc<Self>, i: u32, at: u64) -> Option<(u32, u64)> {
        if !self.claim(i, at) {
            return None;
        }
        let mut args = self.gather(i as usize);
        let result = match &self.graph.nodes[i as usize].op {
            Op::Internal(op) => invoke::catch(|| (op.run)(&mut args)).map_err(NodeError::from),
            Op::Electron(def) => self.run_pool_electron(i, def, &mut args),
            Op::Param(_) => unreachable!("parameters never run"),
        };
        let end = self.now();
        self.complete(i, result, true, end).map(|n| (n, end))
    }

    /// Records a node's outcome and schedules its newly ready dependants.
    pub(super) fn complete(
        self: &Arc<Self>,
        i: u32,
        result: Result<Output, NodeError>,
        keep_one: bool,
        end: u64,
    ) -> Option<u32> {
        let st = &self.states[i as usize];
        if st
            .status
            .compare_exchange(RUNNING, ENDING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Given up by a cancel while its body could not be stopped: the node is final
            // already, and this late outcome is dropped.
            pool().given_up_returned();
            return None;
        }
        st.end.store(end, Ordering::Release);
        let result = match result {
            // A node whose cancellation was requested while it ran ends CANCELLED, whatever
            // its body returned (a body that polls `covalent::cancelled()` returns early, with
            // a partial value or an error).
            Ok(_) if self.cancel.is_requested(i as usize) => Err(NodeError::new(
                ErrorKind::Cancelled,
                "cancelled while running; the value it returned afterwards was discarded",
            )),
            // A recorded value must read back as it is: one that would not fails its node here,
            // before any dependant sees it.
            Ok(v) if self.observer.is_some() => match v.check() {
                Ok(()) => Ok(v),
                Err(e) => Err(NodeError::new(
                    ErrorKind::Serialization,
                    format!(
                        "the output of `{}` (a `{}`) cannot be recorded faithfully as JSON, {e}",
                        self.graph.nodes[i as usize].op.name(),
                        v.type_name()
                    ),
                )),
            },
            r => r,
        };
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
                let cancelled = self.cancel.is_requested(i as usize)
                    && (e.is_cancelled()
                        || matches!(self.graph.nodes[i as usize].op, Op::Electron(_)));
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
                        self.give_up_running_later();
                    }
                }
                None
            }
        };
        self.node_done();
        next
    }

    /// Records the outcome of a node that ran on the async runtime.
    pub(super) fn complete_async(self: &Arc<Self>, i: u32, result: Result<Output, NodeError>) {
        let next = self.complete(i, result, false, self.now());
        debug_assert!(next.is_none());
    }

    /// Marks every node downstream of `i` that has not started as `status`.
    pub(super) fn skip_dependants(self: &Arc<Self>, i: u32, status: u8) {
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

    /// Counts one node as final; the last one ends the run.
    pub(super) fn node_done(self: &Arc<Self>) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    /// Decides the run's status once every node is final, wakes waiters and observers and, for
    /// a sublattice, completes the parent node.
    fn finish(self: &Arc<Self>) {
        self.end.store(self.now(), Ordering::Release);
        let failed = self.failed.lock().unwrap().clone();
        let status = if !failed.is_empty() {
            let mut msg = String::from("The following tasks failed:");
            for f in &failed {
                let name = self.graph.nodes[*f as usize].op.name();
                msg.push_str(&format!("\n{f}: {name}"));
                let first_line = self.states[*f as usize].read_extra(|x| {
                    x.and_then(|x| x.error.as_ref())
                        .map(|e| e.message().lines().next().unwrap_or("").to_string())
                });
                if let Some(line) = first_line {
                    msg.push_str(&format!(": {line}"));
                }
            }
            let _ = self.error.set(msg);
            FAILED
        } else if self.output().is_none() {
            let _ = self.error.set("The dispatch was cancelled".to_string());
            CANCELLED
        } else {
            COMPLETED
        };
        self.status.store(status, Ordering::Release);
        self.done.store(true, Ordering::Release);
        self.done_notify.notify_waiters();
        self.wake_helper();
        if let Some(o) = &self.observer {
            o.finished(self);
        }
        self.complete_parent(status);
    }
}
