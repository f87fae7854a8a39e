//! The JSON API of `covalent ui` (the pages draw everything from it; scripts may use it too).
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /api` | version, store, `csrf_token`, the endpoint list |
//! | `GET /api/dispatches?status=&search=&sort=&order=&limit=&offset=` | a page of dispatch summaries, the number matching, counts per status |
//! | `GET /api/dispatches/{id}` | a dispatch (inputs, result, error, times, tasks) and its top-level graph |
//! | `GET /api/dispatches/{id}/record` | the whole record, as `covalent result --json` prints it |
//! | `GET /api/dispatches/{id}/sublattices/{path}` | the graph of a sublattice node (`3`, `3/1`, ...) |
//! | `GET /api/dispatches/{id}/nodes/{path}` | one node, everything recorded about it |
//! | `GET /api/dispatches/{id}/events?path=` | server-sent events: node status changes, then `end` |
//! | `GET /api/events` | server-sent events: `change` whenever the store changes |
//! | `POST /api/dispatches/{id}/cancel` | `{"nodes": [..]}` (optional): asks for cancellation |
//!
//! Ids may be unique prefixes. Errors are `{"error": "...", "kind": "..."}` with a 4xx or 5xx
//! status: 404 for unknown dispatches, nodes and a store that does not exist yet, 503 for a
//! store that cannot be read, 409 to cancel a dispatch that already ended.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use covalent::Status;
use covalent::store::{AttemptRecord, DispatchRecord, DispatchSummary, ListFilter, NodeRecord};
use serde::Serialize;
use serde_json::{Value, json};

use super::respond;
use super::security::{CSRF_HEADER, TOKEN_HEADER, query_param};
use super::state::{Shared, UiError, blocking};

/// A [`UiError`] answered as JSON.
pub struct ApiError(pub UiError);

impl From<UiError> for ApiError {
    fn from(e: UiError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        respond::api_error(self.0.status(), self.0.kind(), &self.0.message())
    }
}

type ApiResult<T> = Result<T, ApiError>;

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
        "/api/dispatches/{id}",
        "a dispatch and its top-level graph",
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
        "/api/dispatches/{id}/nodes/{path}",
        "one node: status, executor, inputs, output, error, attempts, streams, times",
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

/// A row of the dispatch list.
#[derive(Serialize)]
struct SummaryView {
    id: String,
    lattice: String,
    status: Status,
    done: usize,
    total: usize,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
    runtime_ms: f64,
}

impl From<&DispatchSummary> for SummaryView {
    fn from(s: &DispatchSummary) -> Self {
        SummaryView {
            id: s.id.to_string(),
            lattice: s.lattice.clone(),
            status: s.status,
            done: s.done,
            total: s.total,
            start_time: s.start_time,
            end_time: s.end_time,
            runtime_ms: s.runtime().as_secs_f64() * 1e3,
        }
    }
}

/// The sort keys of the list.
const SORTS: &[&str] = &["start", "id", "lattice", "status", "tasks", "runtime"];

/// The parsed query of `GET /api/dispatches`.
struct ListQuery {
    status: Option<Status>,
    search: Option<String>,
    sort: &'static str,
    descending: bool,
    limit: usize,
    offset: usize,
}

impl ListQuery {
    fn parse(q: &str) -> Result<Self, UiError> {
        let p = |name| query_param(q, name).filter(|v| !v.trim().is_empty());
        let status = p("status")
            .map(|s| s.trim().parse::<Status>())
            .transpose()
            .map_err(UiError::BadRequest)?;
        let sort = match p("sort") {
            None => "start",
            Some(s) => SORTS.iter().copied().find(|k| *k == s).ok_or_else(|| {
                UiError::BadRequest(format!(
                    "unknown sort `{s}`; expected one of: {}",
                    SORTS.join(", ")
                ))
            })?,
        };
        let descending = match p("order").as_deref() {
            None => !matches!(sort, "id" | "lattice" | "status"),
            Some("desc") => true,
            Some("asc") => false,
            Some(o) => {
                return Err(UiError::BadRequest(format!(
                    "unknown order `{o}`; expected asc or desc"
                )));
            }
        };
        let number = |name: &str, default: usize| -> Result<usize, UiError> {
            query_param(q, name)
                .filter(|v| !v.trim().is_empty())
                .map_or(Ok(default), |v| {
                    v.trim().parse().map_err(|_| {
                        UiError::BadRequest(format!("`{name}` must be a whole number, not `{v}`"))
                    })
                })
        };
        Ok(ListQuery {
            status,
            search: p("search").map(|s| s.trim().to_string()),
            sort,
            descending,
            limit: number("limit", 50)?.clamp(1, 1000),
            offset: number("offset", 0)?,
        })
    }
}

/// `GET /api/dispatches`.
pub async fn list(State(state): State<Shared>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let q = ListQuery::parse(q.as_deref().unwrap_or(""))?;
    let page = blocking(&state, move |s| {
        let Some(store) = s.store.get()? else {
            return Ok(json!({
                "dispatches": [], "matched": 0, "total": 0, "counts": {},
                "offset": q.offset, "limit": q.limit, "sort": q.sort,
                "order": if q.descending { "desc" } else { "asc" },
                "data_version": null,
                "store": { "path": s.store.path, "exists": false },
            }));
        };
        let version = store.data_version()?;
        let counts = store.counts()?;
        let total: usize = counts.iter().map(|(_, n)| n).sum();
        let (rows, matched) = if q.sort == "start" && q.descending && q.search.is_none() {
            // The store's own order: let it paginate.
            let rows = store.list(&ListFilter {
                status: q.status,
                search: None,
                limit: Some(q.limit),
                offset: q.offset,
            })?;
            let matched = match q.status {
                Some(st) => counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n),
                None => total,
            };
            (rows, matched)
        } else {
            let mut all = store.list(&ListFilter {
                status: q.status,
                search: q.search.clone(),
                limit: None,
                offset: 0,
            })?;
            sort_rows(&mut all, q.sort, q.descending);
            let matched = all.len();
            let rows = all.into_iter().skip(q.offset).take(q.limit).collect();
            (rows, matched)
        };
        let counts: BTreeMap<String, usize> = counts
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), *n))
            .collect();
        let rows: Vec<SummaryView> = rows.iter().map(SummaryView::from).collect();
        Ok(json!({
            "dispatches": rows,
            "matched": matched,
            "total": total,
            "counts": counts,
            "offset": q.offset,
            "limit": q.limit,
            "sort": q.sort,
            "order": if q.descending { "desc" } else { "asc" },
            "data_version": version,
            "store": { "path": s.store.path, "exists": true },
        }))
    })
    .await?;
    Ok(Json(page))
}

fn sort_rows(rows: &mut [DispatchSummary], key: &str, descending: bool) {
    rows.sort_by(|a, b| {
        let o = match key {
            "id" => a.id.cmp(&b.id),
            "lattice" => a.lattice.to_lowercase().cmp(&b.lattice.to_lowercase()),
            "status" => a.status.as_str().cmp(b.status.as_str()),
            "tasks" => (a.done, a.total).cmp(&(b.done, b.total)),
            "runtime" => a.runtime().cmp(&b.runtime()),
            _ => a.start_time.cmp(&b.start_time),
        }
        .then_with(|| a.start_time.cmp(&b.start_time))
        .then_with(|| a.id.cmp(&b.id));
        if descending { o.reverse() } else { o }
    });
}

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
struct GraphNode<'a> {
    id: usize,
    name: &'a str,
    internal: bool,
    status: Status,
    executor: Option<&'a str>,
    inputs: &'a [(usize, String)],
    sub: Option<SubInfo>,
}

fn graph_nodes(nodes: &[NodeRecord]) -> Vec<GraphNode<'_>> {
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

/// `GET /api/dispatches/{id}`.
pub async fn dispatch(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let body = blocking(&state, move |s| {
        let store = s.store.require()?;
        let uuid = store.resolve(&id)?;
        let version = store.data_version()?;
        let r = s.record(&store, uuid)?;
        let inputs: Vec<Value> = r
            .inputs
            .iter()
            .map(|(k, v)| json!({ "name": k, "value": v }))
            .collect();
        // Serialized here, on the blocking thread: a 10,000-node graph is a few MB.
        let body = serde_json::to_vec(&json!({
            "id": r.id.to_string(),
            "lattice": r.lattice,
            "status": r.status,
            "inputs": inputs,
            "output": r.output,
            "error": r.error,
            "start_time": r.start_time,
            "end_time": r.end_time,
            "runtime_ms": runtime_ms(r.start_time, r.end_time),
            "results_dir": r.results_dir,
            "done": r.done_count(),
            "total": r.task_count(),
            "node_count": r.nodes.len(),
            "data_version": version,
            "nodes": graph_nodes(&r.nodes),
        }))
        .map_err(|e| UiError::Internal(e.to_string()))?;
        Ok(body)
    })
    .await?;
    Ok(json_bytes(body))
}

/// A JSON body made elsewhere.
fn json_bytes(body: Vec<u8>) -> Response {
    let mut resp = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
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

/// A step of the way down to a sublattice.
#[derive(Serialize)]
pub struct Crumb {
    /// Its path (`3`, `3/1`).
    pub path: String,
    /// The sublattice node's name.
    pub name: String,
    /// The child lattice's name.
    pub lattice: String,
}

/// Parses `3/1` into node ids.
pub fn parse_path(path: &str) -> Result<Vec<usize>, UiError> {
    path.split('/')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse().map_err(|_| {
                UiError::BadRequest(format!(
                    "`{path}` is not a node path (node ids joined by /, e.g. 3 or 3/1)"
                ))
            })
        })
        .collect()
}

/// The nodes of the graph at `path` (the top level for an empty path), with the status of
/// that graph and the crumbs down to it.
pub fn graph_at<'a>(
    r: &'a DispatchRecord,
    path: &[usize],
) -> Result<(&'a [NodeRecord], Status, Vec<Crumb>), UiError> {
    let mut nodes: &[NodeRecord] = &r.nodes;
    let mut status = r.status;
    let mut crumbs = Vec::new();
    let mut walked = Vec::new();
    for &id in path {
        walked.push(id.to_string());
        let node = nodes.iter().find(|n| n.id == id).ok_or_else(|| {
            UiError::NotFound(format!(
                "dispatch {} has no node {}",
                r.id,
                walked.join("/")
            ))
        })?;
        let sub = node.sublattice.as_ref().ok_or_else(|| {
            UiError::NotFound(format!(
                "node {} ({}) of dispatch {} has no sublattice graph{}",
                walked.join("/"),
                node.name,
                r.id,
                if node.status.is_terminal() {
                    ""
                } else {
                    " yet"
                }
            ))
        })?;
        crumbs.push(Crumb {
            path: walked.join("/"),
            name: node.name.clone(),
            lattice: sub.lattice.clone(),
        });
        nodes = &sub.nodes;
        status = sub.status;
    }
    Ok((nodes, status, crumbs))
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
        let r = s.record(&store, uuid)?;
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
            let r = s.record(&store, uuid)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_parse_with_defaults_and_clear_errors() {
        let q = ListQuery::parse("").unwrap();
        assert_eq!(
            (q.sort, q.descending, q.limit, q.offset),
            ("start", true, 50, 0)
        );
        let q = ListQuery::parse("sort=lattice&status=failed&limit=5000&search=%20wf%20").unwrap();
        assert_eq!((q.sort, q.descending, q.limit), ("lattice", false, 1000));
        assert_eq!(q.status, Some(Status::Failed));
        assert_eq!(q.search.as_deref(), Some("wf"));
        for bad in ["sort=size", "order=up", "limit=x", "status=bogus"] {
            let Err(UiError::BadRequest(m)) = ListQuery::parse(bad) else {
                panic!("{bad} parsed")
            };
            assert!(!m.is_empty());
        }
    }

    #[test]
    fn node_paths_parse() {
        assert_eq!(parse_path("3/1").unwrap(), [3, 1]);
        assert_eq!(parse_path("").unwrap(), Vec::<usize>::new());
        assert!(parse_path("3/x").is_err());
    }
}
