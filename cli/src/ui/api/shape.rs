//! The JSON shapes several answers share: a node as the graph draws it, the summary of a
//! sublattice node ([`SubInfo`]), task counts and runtimes.
//!
//! Shared by the dispatch, sublattice and node answers and the event streams; it must not
//! read the store or answer a request itself.

use chrono::{DateTime, Utc};
use covalent::Status;
use covalent::store::NodeRecord;
use serde::Serialize;

/// What the graph shows of a sublattice node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubInfo {
    /// The child lattice's name.
    pub lattice: String,
    /// Its status.
    pub status: Status,
    /// Its nodes, internal ones included.
    pub nodes: usize,
    /// Its tasks.
    pub tasks: usize,
    /// Its tasks that completed (or were reused).
    pub done: usize,
}

impl SubInfo {
    /// The summary of `node`'s child graph, if it has one.
    pub fn of(node: &NodeRecord) -> Option<SubInfo> {
        node.sublattice.as_ref().map(|s| SubInfo {
            lattice: s.lattice.clone(),
            status: s.status,
            nodes: s.nodes.len(),
            tasks: s.nodes.iter().filter(|n| !n.internal).count(),
            done: done_count(&s.nodes),
        })
    }
}

/// Tasks that completed or were reused.
pub fn done_count(nodes: &[NodeRecord]) -> usize {
    nodes
        .iter()
        .filter(|n| !n.internal && matches!(n.status, Status::Completed | Status::Reused))
        .count()
}

/// A node as the graph draws it.
#[derive(Serialize)]
pub(super) struct GraphNode<'a> {
    id: usize,
    name: &'a str,
    internal: bool,
    status: Status,
    executor: Option<&'a str>,
    inputs: &'a [(usize, String)],
    sub: Option<SubInfo>,
}

pub(super) fn graph_nodes(nodes: &[NodeRecord]) -> Vec<GraphNode<'_>> {
    nodes
        .iter()
        .map(|n| GraphNode {
            id: n.id,
            name: &n.name,
            internal: n.internal,
            status: n.status,
            executor: n.executor.as_deref(),
            inputs: &n.inputs,
            sub: SubInfo::of(n),
        })
        .collect()
}

/// Milliseconds from `start` to `end`, or to now without an end.
pub fn runtime_ms(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<f64> {
    let start = start?;
    let end = end.unwrap_or_else(Utc::now);
    Some(((end - start).num_microseconds().unwrap_or(0).max(0)) as f64 / 1e3)
}
