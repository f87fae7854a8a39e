//! One node: `GET /api/dispatches/{id}/nodes/{path}`, everything recorded about it, its
//! inputs with what their sources produced, its dependants and its executor's options.
//!
//! For a dispatch of more than `GRAPH_FULL_MAX` tasks only the node and its neighbours are
//! read (`Store::node_links`, `Store::get_nodes`), and its inputs and dependants are cut at
//! [`LINKS_MAX`] each (`inputs_total` and `dependants_total` say how many there are): a node
//! that takes a million inputs answers with the first 200.
//!
//! It must not change the store; whether the node may be cancelled is only reported here.

use axum::extract::{Path, State};
use axum::response::Response;
use covalent::Status;
use covalent::store::AttemptRecord;
use serde::Serialize;
use serde_json::{Value, json};

use crate::ui::api::graph::{graph_at, parse_path};
use crate::ui::api::reply::{ApiResult, json_bytes};
use crate::ui::api::shape::{SubInfo, runtime_ms};
use crate::ui::state::{Shared, UiError, blocking, is_big};

/// The most inputs and dependants a node of a big dispatch is answered with.
pub const LINKS_MAX: usize = 200;

/// An input of a node, with what its source produced.
#[derive(Serialize)]
struct InputView<'a> {
    /// The parameter (edge) name.
    name: &'a str,
    source: usize,
    source_name: Option<&'a str>,
    source_status: Option<Status>,
    source_internal: bool,
    value: Option<&'a Value>,
    /// The file holding the value, when it is too large for the store's row.
    value_file: Option<&'a covalent::store::ValueFile>,
}

/// `GET /api/dispatches/{id}/nodes/{path}`.
pub async fn node(
    State(state): State<Shared>,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let mut ids = parse_path(&path)?;
    let Some(node_id) = ids.pop() else {
        return Err(UiError::BadRequest("give a node id, e.g. 3 or 3/1".into()).into());
    };
    let body = blocking(&state, move |s| {
        let store = s.store.require()?;
        let uuid = store.resolve(&id)?;
        // A big dispatch: the node (and, for a top-level one, its first sources and
        // dependants) read alone; its dependants as the graph lists them.
        let big = is_big(store.summary(uuid)?.total);
        let mut links = None;
        let r = if !big {
            s.record(&store, uuid)?
        } else if let Some(&first) = ids.first() {
            std::sync::Arc::new(store.get_nodes(uuid, &[first])?)
        } else {
            let l = store
                .node_links(uuid, node_id, LINKS_MAX)?
                .ok_or_else(|| UiError::NotFound(format!("dispatch {uuid} has no node {node_id}")))?;
            let mut want = vec![node_id];
            want.extend(&l.sources);
            want.extend(&l.dependants);
            let r = store.get_nodes(uuid, &want)?;
            links = Some(l);
            std::sync::Arc::new(r)
        };
        let (nodes, graph_status, _) = graph_at(&r, &ids)?;
        let mut full: Vec<String> = ids.iter().map(usize::to_string).collect();
        full.push(node_id.to_string());
        let path = full.join("/");
        let n = nodes
            .iter()
            .find(|n| n.id == node_id)
            .ok_or_else(|| UiError::NotFound(format!("dispatch {} has no node {path}", r.id)))?;
        let cap = if big { LINKS_MAX } else { usize::MAX };
        let inputs: Vec<InputView<'_>> = n
            .inputs
            .iter()
            .take(cap)
            .map(|(src, name)| {
                let source = nodes.iter().find(|m| m.id == *src);
                InputView {
                    name,
                    source: *src,
                    source_name: source.map(|m| m.name.as_str()),
                    source_status: source.map(|m| m.status),
                    source_internal: source.is_some_and(|m| m.internal),
                    value: source.and_then(|m| m.output.as_ref()),
                    value_file: source.and_then(|m| m.output_file.as_ref()),
                }
            })
            .collect();
        let dependant = |m: &covalent::store::NodeRecord| {
            json!({ "id": m.id, "name": m.name, "internal": m.internal })
        };
        let (dependants, dependants_total): (Vec<Value>, usize) = match &links {
            Some(l) => (
                l.dependants
                    .iter()
                    .filter_map(|d| nodes.iter().find(|m| m.id == *d))
                    .map(dependant)
                    .collect(),
                l.dependant_count,
            ),
            None => {
                let mut list = Vec::new();
                let mut total = 0;
                for m in nodes
                    .iter()
                    .filter(|m| m.inputs.iter().any(|(src, _)| *src == n.id))
                {
                    total += 1;
                    if list.len() < cap {
                        list.push(dependant(m));
                    }
                }
                (list, total)
            }
        };
        let options = n
            .executor
            .as_deref()
            .map(|e| s.config.executor_options(e))
            .filter(|o| o.as_object().is_none_or(|m| !m.is_empty()));
        let attempts: &[AttemptRecord] = &n.attempts;
        serde_json::to_vec(&json!({
            "dispatch_id": r.id.to_string(),
            "dispatch_status": r.status,
            "graph_status": graph_status,
            "path": path,
            "id": n.id,
            "name": n.name,
            "internal": n.internal,
            "status": n.status,
            "executor": n.executor,
            "executor_options": options,
            "inputs": inputs,
            "output": n.output,
            "output_file": n.output_file,
            "error": n.error,
            "error_kind": n.error_kind,
            "stdout": n.stdout,
            "stderr": n.stderr,
            "attempts": attempts,
            "transfers": n.transfers,
            "start_time": n.start_time,
            "end_time": n.end_time,
            "runtime_ms": runtime_ms(n.start_time, n.end_time),
            "job_handle": n.job_handle,
            "dependants": dependants,
            "dependants_total": dependants_total,
            "inputs_total": n.inputs.len(),
            "sublattice": SubInfo::of(n),
            // Only top-level nodes can be cancelled one by one (`Store::request_cancel`).
            "cancellable": ids.is_empty() && !n.status.is_terminal() && !r.status.is_terminal(),
        }))
        .map_err(|e| UiError::Internal(e.to_string()))
    })
    .await?;
    Ok(json_bytes(body))
}
