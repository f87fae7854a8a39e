//! The dispatcher: runs a built graph.
//!
//! Scheduling state lives in memory, one node state per node: an in-degree counter, a status,
//! times and the output. There is no central loop. Whoever finishes a node (a pool worker or an
//! async task) decrements its dependants' counters and schedules the ones that become ready:
//! sync electrons on the local executor and internal nodes run on the worker pool (the
//! finishing worker keeps one as its next job, so a chain never changes thread); everything
//! else (async electrons, other executors, time limits, sublattices) runs as a task on the
//! async runtime, where `time_limit`, `retries` and cancellation are enforced. A
//! `dispatch_sync` caller runs pool nodes of its own dispatch too.
//!
//! The files, each owning one thing:
//! - `run`: one run of one graph (a dispatch or a sublattice) and its nodes' states, its
//!   construction, the read-only view observers and results use, and the observer trait;
//! - `state`: statuses as node states store them, and the record of one attempt;
//! - `resolve`: the executors a run resolved for its nodes;
//! - `schedule`: readiness, claiming, the pool path, completion and failure propagation, the
//!   run's end;
//! - `attempt`: one node's attempts with the single retry loop of every path, and one attempt
//!   on an executor (time limit, cancellation, clean-up);
//! - `cancelling`: cancel requests applied to nodes that have not started;
//! - `helper`: the `dispatch_sync` caller helping with its own run's pool nodes;
//! - `sublattice`: child runs built at run time under a node.
//!
//! The dispatcher does not build graphs, record, format results or know any particular
//! executor beyond the `Executor` trait.

mod attempt;
mod cancelling;
mod helper;
mod resolve;
mod run;
mod schedule;
mod state;
mod sublattice;

pub(crate) use run::{NodeExtra, NodeState, Run, RunObserver, RunSpec};
pub use state::Attempt;
