//! One dispatch: `GET /api/dispatches/{id}` (its summary and top-level graph),
//! `.../record` (the whole record) and `.../sublattices/{path}` (the graph of a sublattice
//! node).
//!
//! A dispatch of more than `GRAPH_FULL_MAX` tasks is answered without reading its nodes: its
//! head from its row and its graph summarized (`"summarized": true`, `groups`, `group_edges`),
//! decided from the row's task count before anything else is read.
//!
//! Each body is serialized on the blocking thread, since a large graph is a few MB. It must
//! not describe a single node (the node answer does) nor change the store.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use covalent::Uuid;
use covalent::store::{DispatchSummary, Store};
use serde_json::{Value, json};

use crate::ui::api::graph::{graph_at, parse_path};
use crate::ui::api::reply::{ApiResult, json_bytes};
use crate::ui::api::shape::{done_count, graph_nodes, runtime_ms, summary_fields};
use crate::ui::security::query_param;
use crate::ui::state::{AppState, Shared, UiError, blocking, is_big};

/// Whether a query asks for internal nodes (`internal=1` or `internal=true`).
pub fn wants_internal(q: Option<&str>) -> bool {
    query_param(q.unwrap_or(""), "internal").is_some_and(|v| matches!(v.trim(), "1" | "true"))
}

/// `GET /api/dispatches/{id}` (`?internal=1`: a summarized graph groups internal nodes too).
pub async fn dispatch(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let internal = wants_internal(q.as_deref());
    let body = blocking(&state, move |s| {
        let store = s.store.require()?;
        let uuid = store.resolve(&id)?;
        let version = store.data_version()?;
        let sum = store.summary(uuid)?;
        if is_big(sum.total) {
            return summarized(s, &store, uuid, &sum, version, internal);
        }
        let r = s.record(&store, uuid)?;
        let mut body = head(&r, r.done_count(), r.task_count(), version);
        if let Value::Object(m) = &mut body {
            m.insert("node_count".into(), json!(r.nodes.len()));
            m.insert("nodes".into(), json!(graph_nodes(&r.nodes)));
        }
        // Serialized here, on the blocking thread: a 10,000-node graph is a few MB.
        let body = serde_json::to_vec(&body).map_err(|e| UiError::Internal(e.to_string()))?;
        Ok(body)
    })
    .await?;
    Ok(json_bytes(body))
}

/// The answer for a dispatch whose graph is summarized: its head from its row, its groups.
fn summarized(
    s: &AppState,
    store: &Store,
    uuid: Uuid,
    sum: &DispatchSummary,
    version: i64,
    internal: bool,
) -> Result<Vec<u8>, UiError> {
    let r = store.get_without_nodes(uuid)?;
    let g = s.graph_summary(store, uuid, internal)?;
    let mut body = head(&r, sum.done, sum.total, version);
    if let Value::Object(m) = &mut body {
        m.insert("internal".into(), json!(internal));
    }
    if let Value::Object(m) = &mut body {
        m.extend(summary_fields(&g));
    }
    serde_json::to_vec(&body).map_err(|e| UiError::Internal(e.to_string()))
}

/// What the dispatch page shows of a dispatch above its graph (both answers start with it).
fn head(r: &covalent::store::DispatchRecord, done: usize, total: usize, version: i64) -> Value {
    json!({
        "id": r.id.to_string(),
        "lattice": r.lattice,
        "status": r.status,
        "inputs": inputs_of(r),
        "output": r.output,
        "output_file": r.output_file,
        "error": r.error,
        "start_time": r.start_time,
        "end_time": r.end_time,
        "runtime_ms": runtime_ms(r.start_time, r.end_time),
        "results_dir": r.results_dir,
        "done": done,
        "total": total,
        "data_version": version,
    })
}

/// `GET /api/dispatches/{id}/record`.
pub async fn record(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let body = blocking(&state, move |s| {
        let store = s.store.require()?;
        let uuid = store.resolve(&id)?;
        let r = s.record(&store, uuid)?;
        serde_json::to_vec(&*r).map_err(|e| UiError::Internal(e.to_string()))
    })
    .await?;
    Ok(json_bytes(body))
}

/// `GET /api/dispatches/{id}/sublattices/{path}`.
pub async fn sublattice(
    State(state): State<Shared>,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ids = parse_path(&path)?;
    if ids.is_empty() {
        return Err(UiError::BadRequest("give a node path, e.g. 3 or 3/1".into()).into());
    }
    let body = blocking(&state, move |s| {
        let store = s.store.require()?;
        let uuid = store.resolve(&id)?;
        let version = store.data_version()?;
        let r = s.record_under(&store, uuid, ids[0])?;
        let (nodes, status, crumbs) = graph_at(&r, &ids)?;
        let lattice = crumbs.last().map(|c| c.lattice.clone()).unwrap_or_default();
        serde_json::to_vec(&json!({
            "dispatch_id": r.id.to_string(),
            "path": crumbs.last().map(|c| c.path.clone()),
            "crumbs": crumbs,
            "lattice": lattice,
            "status": status,
            "dispatch_status": r.status,
            "done": done_count(nodes),
            "total": nodes.iter().filter(|n| !n.internal).count(),
            "node_count": nodes.len(),
            "data_version": version,
            "nodes": graph_nodes(nodes),
        }))
        .map_err(|e| UiError::Internal(e.to_string()))
    })
    .await?;
    Ok(json_bytes(body))
}

/// A dispatch's inputs for the page: name and value, or the file holding a large one.
fn inputs_of(r: &covalent::store::DispatchRecord) -> Vec<Value> {
    r.inputs
        .iter()
        .map(|(k, v)| match r.input_files.iter().find(|(n, _)| n == k) {
            Some((_, file)) => json!({ "name": k, "value": null, "value_file": file }),
            None => json!({ "name": k, "value": v }),
        })
        .collect()
}
