//! The JSON shapes several answers share: a node as the graph draws it, the summary of a
//! sublattice node ([`SubInfo`]), the groups of a summarized graph, task counts and runtimes.
//!
//! Shared by the dispatch, sublattice and node answers and the event streams; it must not
//! read the store or answer a request itself.

use chrono::{DateTime, Utc};
use covalent::Status;
use covalent::store::{GraphSummary, NodeGroup, NodeRecord};
use serde::Serialize;
use serde_json::{Map, Value, json};

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

/// Status counts as `{"COMPLETED": 3, ...}`.
pub fn status_counts(statuses: &[(Status, usize)]) -> Value {
    let map: Map<String, Value> = statuses
        .iter()
        .map(|(s, n)| (s.as_str().to_string(), json!(n)))
        .collect();
    Value::Object(map)
}

/// A group of a summarized graph as the page draws it.
fn group_view(g: &NodeGroup) -> Value {
    json!({
        "key": g.key,
        "name": g.name,
        "executor": g.executor,
        "internal": g.internal,
        "sublattice": g.sublattice,
        "count": g.count,
        "first_id": g.first_id,
        "depth": [g.depth.0, g.depth.1],
        "statuses": status_counts(&g.statuses),
        "inner_edges": g.inner_edges,
    })
}

/// The groups and group edges of a summarized graph, with its sizes (merged into the dispatch
/// answer).
pub fn summary_fields(g: &GraphSummary) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("summarized".into(), json!(true));
    m.insert("node_count".into(), json!(g.node_count));
    m.insert("shown".into(), json!(g.shown));
    m.insert("levels".into(), json!(g.levels));
    m.insert("bands".into(), json!(g.bands));
    m.insert(
        "groups".into(),
        Value::Array(g.groups.iter().map(group_view).collect()),
    );
    m.insert(
        "group_edges".into(),
        serde_json::to_value(&g.edges).unwrap_or(Value::Null),
    );
    m
}

/// Milliseconds from `start` to `end`, or to now without an end.
pub fn runtime_ms(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<f64> {
    let start = start?;
    let end = end.unwrap_or_else(Utc::now);
    Some(((end - start).num_microseconds().unwrap_or(0).max(0)) as f64 / 1e3)
}
