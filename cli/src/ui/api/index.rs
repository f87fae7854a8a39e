//! `GET /api`: who is serving, which store it reads, the CSRF token the pages send back, and
//! [`ENDPOINTS`], the list of every endpoint.
//!
//! The list describes the routes; it must not define them (the router in `ui` does) and
//! must not be used to dispatch requests.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::ui::api::reply::ApiResult;
use crate::ui::security::{CSRF_HEADER, TOKEN_HEADER};
use crate::ui::state::{Shared, blocking};

/// Every endpoint: method, path, what it answers (also in `GET /api`).
pub const ENDPOINTS: &[(&str, &str, &str)] = &[
    ("GET", "/api", "this list, the store, the CSRF token"),
    (
        "GET",
        "/api/dispatches?status=&search=&sort=start|id|lattice|status|tasks|runtime&order=asc|desc&limit=&offset=",
        "a page of dispatches, how many match, counts per status",
    ),
    (
        "GET",
        "/api/dispatches/{id}?internal=",
        "a dispatch and its top-level graph (above 20,000 tasks: summarized, nodes grouped by name and depth)",
    ),
    (
        "GET",
        "/api/dispatches/{id}/record",
        "the whole record (as `covalent result --json`)",
    ),
    (
        "GET",
        "/api/dispatches/{id}/sublattices/{path}",
        "the graph of a sublattice node; path = node ids joined by /",
    ),
    (
        "GET",
        "/api/dispatches/{id}/nodes?offset=&limit=&internal=&group=",
        "a page of top-level nodes (limit up to 500), or of one group of a summarized graph",
    ),
    (
        "GET",
        "/api/dispatches/{id}/nodes/{path}",
        "one node: status, executor, inputs, output, error, attempts, file transfers, streams, times",
    ),
    (
        "GET",
        "/api/dispatches/{id}/events?path=",
        "server-sent events: `update` (status changes), `end`, `problem`",
    ),
    (
        "GET",
        "/api/events",
        "server-sent events: `change` whenever the store changes",
    ),
    (
        "POST",
        "/api/dispatches/{id}/cancel",
        "body {\"nodes\": [ids]} or {}: request cancellation (needs the CSRF header)",
    ),
];

/// `GET /api`.
pub async fn index(State(state): State<Shared>) -> ApiResult<Json<Value>> {
    let (exists, error, version) = blocking(&state, |s| {
        Ok(match s.store.get() {
            Ok(Some(store)) => (true, None, store.data_version().ok()),
            Ok(None) => (false, None, None),
            Err(e) => (true, Some(e.to_string()), None),
        })
    })
    .await?;
    let endpoints: Vec<Value> = ENDPOINTS
        .iter()
        .map(|(m, p, what)| json!({ "method": m, "path": p, "what": what }))
        .collect();
    Ok(Json(json!({
        "name": "covalent ui",
        "version": env!("CARGO_PKG_VERSION"),
        "store": {
            "path": state.store.path,
            "data_dir": state.store.data_dir,
            "exists": exists,
            "error": error,
        },
        "data_version": version,
        "csrf_header": CSRF_HEADER,
        "csrf_token": state.security.csrf(),
        "token_required": state.security.token().is_some(),
        "token_header": TOKEN_HEADER,
        "endpoints": endpoints,
    })))
}
