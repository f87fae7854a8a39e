//! Results: [`LatticeResult`] (a dispatch's status, typed value, inputs, error, times and
//! nodes) and [`NodeResult`] (one node), and the Covalent-style report their `Display` prints.
//!
//! Views read the dispatcher's state directly; nothing is copied or serialized until asked for.
//! This module must not change any state.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::api_error::Error;
use crate::dispatcher::{Attempt, NodeExtra, NodeState, Run};
use crate::error::{ErrorKind, NodeError};
use crate::graph::Op;
use crate::record::{AttemptRecord, DispatchRecord, NodeRecord, SublatticeRecord};
use crate::status::Status;
use crate::value::{Output, Value};

/// The result of a dispatch.
pub struct LatticeResult<T> {
    run: Arc<Run>,
    value: Option<T>,
}

impl<T> fmt::Debug for LatticeResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatticeResult")
            .field("dispatch_id", &self.run.id())
            .field("status", &self.run.status())
            .finish()
    }
}

fn wall(run: &Run, offset: Duration) -> DateTime<Utc> {
    DateTime::<Utc>::from(run.started_wall() + offset)
}

impl<T: Value> LatticeResult<T> {
    pub(crate) fn from_run(run: Arc<Run>) -> Result<Self, Error> {
        let value = match run.output() {
            Some(v) if run.status() == Status::Completed => {
                Some(v.get::<T>().map_err(|reason| Error::Output {
                    lattice: run.graph().name.clone(),
                    expected: std::any::type_name::<T>(),
                    reason,
                })?)
            }
            _ => None,
        };
        Ok(LatticeResult { run, value })
    }

    /// The lattice's value, when the dispatch COMPLETED.
    pub fn value(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// The lattice's value, taken out.
    pub fn into_value(self) -> Option<T> {
        self.value
    }
}

impl<T> LatticeResult<T> {
    /// The dispatch id.
    pub fn dispatch_id(&self) -> Uuid {
        self.run.id()
    }
    /// The lattice's name.
    pub fn lattice_name(&self) -> &str {
        &self.run.graph().name
    }
    /// COMPLETED, FAILED or CANCELLED.
    pub fn status(&self) -> Status {
        self.run.status()
    }
    /// Why the dispatch did not complete: for failures, the failed nodes
    /// (`The following tasks failed:` then `id: name: message` lines).
    pub fn error(&self) -> Option<&str> {
        self.run.error()
    }
    /// The lattice's inputs, by parameter name, as JSON.
    pub fn inputs(&self) -> &[(String, serde_json::Value)] {
        &self.run.graph().inputs_json
    }
    /// When the dispatch started.
    pub fn start_time(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(self.run.started_wall())
    }
    /// When it ended.
    pub fn end_time(&self) -> Option<DateTime<Utc>> {
        self.run.end_offset().map(|d| wall(&self.run, d))
    }
    /// Wall time from start to end.
    pub fn runtime(&self) -> Option<Duration> {
        self.run.end_offset()
    }
    /// The directory for the dispatch's files.
    pub fn results_dir(&self) -> &std::path::Path {
        self.run.results_dir()
    }
    /// Every node of the top-level graph, internal ones included, in id order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = NodeResult<'_>> + '_ {
        (0..self.run.nodes().len()).map(|i| NodeResult {
            run: &self.run,
            id: i,
        })
    }
    /// One node.
    pub fn node(&self, id: usize) -> Option<NodeResult<'_>> {
        (id < self.run.nodes().len()).then_some(NodeResult { run: &self.run, id })
    }
    /// Number of tasks (internal nodes excluded).
    pub fn task_count(&self) -> usize {
        self.run.graph().task_count()
    }
    /// The dispatch as plain data (what the store keeps, and what `Display` prints).
    pub fn to_record(&self) -> crate::record::DispatchRecord {
        record_of(&self.run)
    }
    /// Number of tasks that completed.
    pub fn completed_count(&self) -> usize {
        self.nodes()
            .filter(|n| !n.is_internal() && n.status() == Status::Completed)
            .count()
    }
}

/// One node of a dispatch.
#[derive(Clone, Copy)]
pub struct NodeResult<'a> {
    run: &'a Run,
    id: usize,
}

impl fmt::Debug for NodeResult<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeResult")
            .field("id", &self.id)
            .field("name", &self.name())
            .field("status", &self.status())
            .finish()
    }
}

impl<'a> NodeResult<'a> {
    pub(crate) fn new(run: &'a Run, id: usize) -> Self {
        NodeResult { run, id }
    }
    pub(crate) fn sub_run(&self) -> Option<Arc<Run>> {
        self.extra(|x| x.sub.clone()).flatten()
    }
    fn state(&self) -> &'a NodeState {
        self.run.node(self.id)
    }
    fn extra<R>(&self, f: impl FnOnce(&NodeExtra) -> R) -> Option<R> {
        self.state().read_extra(|x| x.map(f))
    }
    /// The node id.
    pub fn id(&self) -> usize {
        self.id
    }
    /// The electron's name (`:parameter:`, `:electron_list:`... for internal nodes).
    pub fn name(&self) -> &'static str {
        self.run.graph().nodes[self.id].op.name()
    }
    /// Whether the node is internal (parameter, collection, indexing).
    pub fn is_internal(&self) -> bool {
        self.run.graph().nodes[self.id].op.is_internal()
    }
    /// Whether the node is a sublattice.
    pub fn is_sublattice(&self) -> bool {
        matches!(&self.run.graph().nodes[self.id].op, Op::Electron(d) if matches!(d.body, crate::electron::Body::Sublattice(_)))
    }
    /// The node's status.
    pub fn status(&self) -> Status {
        self.state().status()
    }
    /// The node's output.
    pub fn output(&self) -> Option<&'a Output> {
        self.state().value()
    }
    /// The node's output as JSON: none when it has no output, or when its output has no
    /// faithful JSON form (a value of an unrecorded, in-process run may hold a NaN, say; see
    /// [`Output::check`], and [`NodeResult::output`] for the value itself).
    pub fn output_json(&self) -> Option<serde_json::Value> {
        self.output().and_then(|o| o.to_json().ok())
    }
    /// The node's output as `T`.
    pub fn output_as<T: Value>(&self) -> Option<T> {
        self.output().and_then(|o| o.get::<T>().ok())
    }
    /// Why the node failed or was cancelled (the message).
    pub fn error(&self) -> Option<String> {
        self.node_error().map(|e| e.message().to_string())
    }
    /// What kind of failure ended the node.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.node_error().map(|e| e.kind())
    }
    /// Why the node failed or was cancelled: kind and message.
    pub fn node_error(&self) -> Option<NodeError> {
        self.extra(|x| x.error.clone()).flatten()
    }
    /// Every attempt, with its times and error.
    pub fn attempts(&self) -> Vec<Attempt> {
        let recorded = self.extra(|x| x.attempts.clone()).unwrap_or_default();
        if !recorded.is_empty() {
            return recorded;
        }
        match (self.status(), self.state().times()) {
            (Status::Completed | Status::Failed, (Some(start), Some(end))) if !self.is_param() => {
                vec![Attempt {
                    number: 1,
                    start,
                    end,
                    error: self.node_error(),
                }]
            }
            _ => Vec::new(),
        }
    }
    /// Number of attempts.
    pub fn attempt_count(&self) -> usize {
        self.attempts().len()
    }
    fn is_param(&self) -> bool {
        matches!(self.run.graph().nodes[self.id].op, Op::Param(_))
    }
    /// The name of the executor the node ran on (`None` for internal nodes).
    pub fn executor(&self) -> Option<String> {
        if !matches!(self.run.graph().nodes[self.id].op, Op::Electron(_)) {
            return None;
        }
        if let Some(Some(e)) = self.extra(|x| x.executor.clone()) {
            return Some(e.short_name().to_string());
        }
        self.run
            .executor_name(self.run.graph().nodes[self.id].executor)
    }
    /// The instance id of the executor the node ran on (see
    /// [`ExecutorRef::instance_id`](crate::executor::ExecutorRef::instance_id)).
    pub fn executor_instance(&self) -> Option<u64> {
        if let Some(Some(e)) = self.extra(|x| x.executor.clone()) {
            return Some(e.instance_id());
        }
        match self.run.graph().nodes[self.id].op {
            Op::Electron(_) => self.run.resolved_executor(self.id).map(|e| e.instance_id()),
            _ => None,
        }
    }
    /// When the node started.
    pub fn start_time(&self) -> Option<DateTime<Utc>> {
        self.state().times().0.map(|d| wall(self.run, d))
    }
    /// When it ended.
    pub fn end_time(&self) -> Option<DateTime<Utc>> {
        self.state().times().1.map(|d| wall(self.run, d))
    }
    /// Its stdout, as recorded by its executor.
    pub fn stdout(&self) -> String {
        self.extra(|x| x.stdout.clone()).unwrap_or_default()
    }
    /// Its stderr, as recorded by its executor.
    pub fn stderr(&self) -> String {
        self.extra(|x| x.stderr.clone()).unwrap_or_default()
    }
    /// Its job handle, if its executor recorded one.
    pub fn job_handle(&self) -> Option<crate::executor::JobHandle> {
        self.extra(|x| x.job_handle.clone()).flatten()
    }
    /// Its file transfers (`files = [...]`, `File` inputs and outputs), every attempt's.
    pub fn transfers(&self) -> Vec<crate::files::TransferRecord> {
        self.extra(|x| x.more.as_ref().map(|m| m.transfers.clone()))
            .flatten()
            .unwrap_or_default()
    }
    /// Its inputs: `(source node id, edge name)`, ordering edges included.
    pub fn inputs(&self) -> Vec<(usize, String)> {
        self.run
            .graph()
            .inputs_of(self.id)
            .iter()
            .map(|&(src, slot)| (src as usize, self.run.graph().edge_name(self.id, slot)))
            .collect()
    }
    /// Ids of the nodes that take its output (or wait for it).
    pub fn dependants(&self) -> Vec<usize> {
        self.run
            .graph()
            .deps_of(self.id)
            .iter()
            .map(|&d| d as usize)
            .collect()
    }
    /// For a sublattice node: the child graph's nodes, once built.
    pub fn sublattice(&self) -> Option<SublatticeResult> {
        self.extra(|x| x.sub.clone())
            .flatten()
            .map(|run| SublatticeResult { run })
    }
}

/// The nodes of a sublattice, recorded under the parent dispatch.
pub struct SublatticeResult {
    run: Arc<Run>,
}

impl fmt::Debug for SublatticeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SublatticeResult")
            .field("lattice", &self.run.graph().name)
            .field("status", &self.run.status())
            .finish()
    }
}

impl SublatticeResult {
    /// The child lattice's name.
    pub fn lattice_name(&self) -> &str {
        &self.run.graph().name
    }
    /// The child's status.
    pub fn status(&self) -> Status {
        self.run.status()
    }
    /// The child's nodes.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = NodeResult<'_>> + '_ {
        (0..self.run.nodes().len()).map(|i| NodeResult {
            run: &self.run,
            id: i,
        })
    }
    /// Number of tasks in the child (internal nodes excluded).
    pub fn task_count(&self) -> usize {
        self.run.graph().task_count()
    }
}

impl<T> fmt::Display for LatticeResult<T> {
    /// The Covalent-style report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_record(), f)
    }
}

// ---- records of runs in this process ------------------------------------------------------

/// The record of a run in this process.
pub(crate) fn record_of(run: &Run) -> DispatchRecord {
    let output = match run.output() {
        Some(v) if run.status() == Status::Completed => json_of(v),
        _ => None,
    };
    let wall = |d: Duration| DateTime::<Utc>::from(run.started_wall() + d);
    DispatchRecord {
        id: run.id(),
        lattice: run.graph().name.clone(),
        status: run.status(),
        inputs: run.graph().inputs_json.clone(),
        input_files: Vec::new(),
        output,
        output_file: None,
        error: run.error().map(str::to_string),
        start_time: Some(DateTime::<Utc>::from(run.started_wall())),
        end_time: run.end_offset().map(wall),
        results_dir: Some(run.results_dir().to_path_buf()),
        nodes: nodes_of(run),
    }
}

/// A value's JSON; none for a value of an unrecorded run that has no faithful JSON form (it
/// exists only in this process; see [`Output::check`]).
fn json_of(v: &Output) -> Option<serde_json::Value> {
    v.to_json().ok()
}

/// Records of every node of a run.
pub(crate) fn nodes_of(run: &Run) -> Vec<NodeRecord> {
    (0..run.nodes().len()).map(|i| node_of(run, i)).collect()
}

/// The record of node `i` of a run.
pub(crate) fn node_of(run: &Run, i: usize) -> NodeRecord {
    let view = NodeResult::new(run, i);
    let wall = |d: Duration| DateTime::<Utc>::from(run.started_wall() + d);
    let attempts = view
        .attempts()
        .into_iter()
        .map(|a| AttemptRecord {
            number: a.number,
            start_time: wall(a.start_offset()),
            end_time: wall(a.start_offset() + a.duration()),
            error_kind: a.error.as_ref().map(|e| e.kind()),
            error: a.error.map(|e| e.message().to_string()),
        })
        .collect();
    NodeRecord {
        id: i,
        name: view.name().to_string(),
        internal: view.is_internal(),
        status: view.status(),
        executor: view.executor(),
        inputs: view.inputs(),
        output: view.output().and_then(json_of),
        output_file: None,
        error: view.error(),
        error_kind: view.error_kind(),
        stdout: view.stdout(),
        stderr: view.stderr(),
        attempts,
        transfers: view.transfers(),
        start_time: view.start_time(),
        end_time: view.end_time(),
        job_handle: view.job_handle().map(|h| h.0),
        executor_options: None,
        sublattice: view.sub_run().map(|sub| SublatticeRecord {
            lattice: sub.graph().name.clone(),
            status: sub.status(),
            nodes: nodes_of(&sub),
        }),
    }
}
