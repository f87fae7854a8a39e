//! `POST /api/dispatches/{id}/cancel`: a cancellation request for a whole dispatch or for
//! some of its top-level nodes, answered `202 Accepted`, or `409` once the dispatch ended.
//!
//! It is the only API answer that writes to the store, and it only asks for cancellation; it
//! must not stop anything itself (the running dispatch does).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ui::api::reply::ApiResult;
use crate::ui::state::{Shared, UiError, blocking, is_big};

/// `POST /api/dispatches/{id}/cancel` with `{"nodes": [..]}` or `{}`.
pub async fn cancel(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let nodes: Vec<usize> = if body.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| UiError::BadRequest(format!("the body is not JSON: {e}")))?;
        match v.get("nodes") {
            None | Some(Value::Null) => Vec::new(),
            Some(list) => serde_json::from_value(list.clone()).map_err(|_| {
                UiError::BadRequest("`nodes` must be a list of node ids, e.g. [3, 5]".into())
            })?,
        }
    };
    let (uuid, status, nodes) = blocking(&state, move |s| {
        let store = s.store.require()?;
        let uuid = store.resolve(&id)?;
        if !nodes.is_empty() {
            // A big dispatch's record is not read whole: only the nodes named.
            let r = if is_big(store.summary(uuid)?.total) {
                std::sync::Arc::new(store.get_nodes(uuid, &nodes)?)
            } else {
                s.record(&store, uuid)?
            };
            if let Some(bad) = nodes.iter().find(|n| r.node(**n).is_none()) {
                return Err(UiError::NotFound(format!(
                    "dispatch {uuid} has no node {bad}"
                )));
            }
        }
        let status = store.request_cancel(uuid, &nodes)?;
        Ok((uuid, status, nodes))
    })
    .await?;
    if status.is_terminal() {
        return Err(UiError::Conflict(format!(
            "dispatch {uuid} already ended ({status}); nothing to cancel"
        ))
        .into());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "requested": true,
            "dispatch_id": uuid.to_string(),
            "status": status,
            "nodes": nodes,
        })),
    )
        .into_response())
}
