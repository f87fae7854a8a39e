//! One node: `GET /api/dispatches/{id}/nodes/{path}`, everything recorded about it, its
//! inputs with what their sources produced, its dependants and its executor's options.
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
use crate::ui::state::{Shared, UiError, blocking};

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
        let r = s.record(&store, uuid)?;
        let (nodes, graph_status, _) = graph_at(&r, &ids)?;
        let mut full: Vec<String> = ids.iter().map(usize::to_string).collect();
        full.push(node_id.to_string());
        let path = full.join("/");
        let n = nodes
            .iter()
            .find(|n| n.id == node_id)
            .ok_or_else(|| UiError::NotFound(format!("dispatch {} has no node {path}", r.id)))?;
        let inputs: Vec<InputView<'_>> = n
            .inputs
            .iter()
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
        let dependants: Vec<Value> = nodes
            .iter()
            .filter(|m| m.inputs.iter().any(|(src, _)| *src == n.id))
            .map(|m| json!({ "id": m.id, "name": m.name, "internal": m.internal }))
            .collect();
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
            "start_time": n.start_time,
            "end_time": n.end_time,
            "runtime_ms": runtime_ms(n.start_time, n.end_time),
            "job_handle": n.job_handle,
            "dependants": dependants,
            "sublattice": SubInfo::of(n),
            // Only top-level nodes can be cancelled one by one (`Store::request_cancel`).
            "cancellable": ids.is_empty() && !n.status.is_terminal() && !r.status.is_terminal(),
        }))
        .map_err(|e| UiError::Internal(e.to_string()))
    })
    .await?;
    Ok(json_bytes(body))
}
