//! A page of a dispatch's top-level nodes: `GET /api/dispatches/{id}/nodes?offset=&limit=
//! &internal=&group=`, as the graph draws them, with how many match. With `group=K`, the
//! nodes of group K of the summarized graph (so the drawer of a group pages through its
//! members); without it, every node (internal ones with `internal=1`).
//!
//! Only the page's nodes are read (`Store::get_page`, `Store::get_nodes`); it must not read a
//! whole record nor change the store.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::json;

use crate::ui::api::dispatch::wants_internal;
use crate::ui::api::reply::{ApiResult, json_bytes};
use crate::ui::api::shape::{graph_nodes, status_counts};
use crate::ui::security::query_param;
use crate::ui::state::{Shared, UiError, blocking};

/// The most nodes of one page.
pub const PAGE_MAX: usize = 500;
/// Nodes of a page without `limit`.
const PAGE_DEFAULT: usize = 100;

/// `GET /api/dispatches/{id}/nodes`.
pub async fn nodes(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = q.unwrap_or_default();
    let number = |name: &str| -> Result<Option<usize>, UiError> {
        query_param(&q, name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                v.trim().parse().map_err(|_| {
                    UiError::BadRequest(format!("`{name}` must be a whole number, not `{v}`"))
                })
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let limit = number("limit")?.unwrap_or(PAGE_DEFAULT);
    if limit == 0 || limit > PAGE_MAX {
        return Err(UiError::BadRequest(format!("`limit` must be 1 to {PAGE_MAX}")).into());
    }
    let group = number("group")?;
    let internal = wants_internal(Some(&q));
    let body = blocking(&state, move |s| {
        let store = s.store.require()?;
        let uuid = store.resolve(&id)?;
        let body = match group {
            None => {
                let (r, matching) = store.get_page(uuid, offset, limit, internal)?;
                serde_json::to_vec(&json!({
                    "dispatch_id": uuid.to_string(),
                    "matching": matching,
                    "offset": offset,
                    "limit": limit,
                    "internal": internal,
                    "nodes": graph_nodes(&r.nodes),
                }))
            }
            Some(k) => {
                let g = s.graph_summary(&store, uuid, internal)?;
                let Some(info) = g.groups.get(k) else {
                    return Err(UiError::NotFound(format!(
                        "the graph of dispatch {uuid} has no group {k} ({} groups{})",
                        g.groups.len(),
                        if internal {
                            ""
                        } else {
                            " without internal nodes"
                        }
                    )));
                };
                let ids: Vec<usize> = g.members_of(k).skip(offset).take(limit).collect();
                let r = store.get_nodes(uuid, &ids)?;
                serde_json::to_vec(&json!({
                    "dispatch_id": uuid.to_string(),
                    "matching": info.count,
                    "offset": offset,
                    "limit": limit,
                    "internal": internal,
                    "group": {
                        "key": k,
                        "name": info.name,
                        "count": info.count,
                        "statuses": status_counts(&info.statuses),
                    },
                    "nodes": graph_nodes(&r.nodes),
                }))
            }
        };
        body.map_err(|e| UiError::Internal(e.to_string()))
    })
    .await?;
    Ok(json_bytes(body))
}
