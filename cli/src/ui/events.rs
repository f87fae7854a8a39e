//! Live updates: one poller watches the store's `data_version` (it changes whenever any
//! process commits) and bumps a counter; each server-sent-event stream wakes on it.
//!
//! - `GET /api/events`: `hello`, then `change` (at most every 300 ms) whenever the store
//!   changed; the list page refetches its page.
//! - `GET /api/dispatches/{id}/events?path=`: `update` with the dispatch's status, task counts
//!   and the nodes of the graph at `path` whose status (or sublattice) changed (all of them in
//!   the first event, `"full": true`), then `end` once the dispatch ended, and the stream
//!   closes. `problem` (then close) when the dispatch disappears or the store fails. While the
//!   dispatch runs the stream also looks every 2 s without a change, so a dispatch whose
//!   process died turns INTERRUPTED on screen. A big dispatch's top-level stream (more than
//!   `GRAPH_FULL_MAX` tasks; `&internal=1` as the page groups it) sends the status counts of
//!   the groups of its summarized graph that changed (`groups`: `[[key, {STATUS: n}], ...]`)
//!   instead of nodes, recounted at most every 2 s; its head comes from the dispatch's row.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use covalent::{Status, Uuid};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::api::{
    ApiError, SubInfo, done_count, graph_at, parse_path, runtime_ms, status_counts, wants_internal,
};
use super::security::query_param;
use super::state::{AppState, Shared, blocking, is_big};

/// How often the store's `data_version` is read while someone watches.
const POLL: Duration = Duration::from_millis(100);
/// ... and while nobody does.
const POLL_IDLE: Duration = Duration::from_millis(1000);
/// The least time between two updates of one stream.
const THROTTLE: Duration = Duration::from_millis(200);
/// The least time between two `change` events of the list stream.
const LIST_THROTTLE: Duration = Duration::from_millis(300);
/// How often a running dispatch is looked at without a change.
const RECHECK: Duration = Duration::from_secs(2);

/// Polls `data_version` forever, bumping `state.changes` when it moves (or the store appears).
pub async fn poll_versions(state: Shared) {
    let mut last: Option<i64> = None;
    loop {
        let s = state.clone();
        let version = tokio::task::spawn_blocking(move || match s.store.get() {
            Ok(Some(store)) => store.data_version().ok(),
            _ => None,
        })
        .await
        .ok()
        .flatten();
        if version.is_some() && version != last {
            last = version;
            state.changes.send_modify(|n| *n += 1);
        }
        let idle = state.changes.receiver_count() == 0;
        tokio::time::sleep(if idle { POLL_IDLE } else { POLL }).await;
    }
}

/// `GET /api/events`.
pub async fn list_events(State(state): State<Shared>) -> Response {
    let rx = state.changes.subscribe();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if first {
            let n = *rx.borrow_and_update();
            let e = Event::default()
                .event("hello")
                .data(json!({ "change": n }).to_string());
            return Some((Ok::<_, Infallible>(e), (rx, false)));
        }
        rx.changed().await.ok()?;
        tokio::time::sleep(LIST_THROTTLE).await;
        let n = *rx.borrow_and_update();
        let e = Event::default()
            .event("change")
            .data(json!({ "change": n }).to_string());
        Some((Ok(e), (rx, false)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// `GET /api/dispatches/{id}/events?path=`.
pub async fn dispatch_events(
    State(state): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = q.unwrap_or_default();
    let path = parse_path(&query_param(&q, "path").unwrap_or_default())?;
    let internal = wants_internal(Some(&q));
    let uuid = blocking(&state, move |s| {
        let store = s.store.require()?;
        let uuid = store.resolve(&id)?;
        store.status(uuid)?; // a well-formed id that names nothing is a 404 too
        Ok(uuid)
    })
    .await?;
    let (tx, rx) = mpsc::channel::<Event>(4);
    tokio::spawn(watch_dispatch(state, uuid, path, internal, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// What the page shows of a node in the graph.
type Seen = HashMap<usize, (Status, Option<SubInfo>)>;

/// The state of a dispatch and of the graph at a path, as the stream compares it.
struct Snapshot {
    head: Value,
    graph_status: Option<Status>,
    nodes: Vec<(usize, Status, Option<SubInfo>)>,
    /// A summarized graph's groups: key and status counts.
    groups: Vec<(usize, Value)>,
    terminal: bool,
}

fn snapshot(
    state: &AppState,
    id: Uuid,
    path: &[usize],
    internal: bool,
) -> Result<Snapshot, super::state::UiError> {
    let store = state.store.require()?;
    let version = store.data_version()?;
    let sum = store.summary(id)?;
    let big = is_big(sum.total);
    if big && path.is_empty() {
        // Neither the record nor its nodes: the row, and the groups' counts.
        let r = store.get_without_nodes(id)?;
        let g = state.graph_summary(&store, id, internal)?;
        return Ok(Snapshot {
            head: json!({
                "status": r.status,
                "done": sum.done,
                "total": sum.total,
                "end_time": r.end_time,
                "runtime_ms": runtime_ms(r.start_time, r.end_time),
                "error": r.error,
                "data_version": version,
                "graph_done": sum.done,
            }),
            graph_status: Some(r.status),
            nodes: Vec::new(),
            groups: g
                .groups
                .iter()
                .map(|g| (g.key, status_counts(&g.statuses)))
                .collect(),
            terminal: r.status.is_terminal(),
        });
    }
    let r = match path.first() {
        Some(&first) if big => state.record_under(&store, id, first)?,
        _ => state.record(&store, id)?,
    };
    let (nodes, graph_status, graph_done) = match graph_at(&r, path) {
        Ok((nodes, status, _)) => (
            nodes
                .iter()
                .map(|n| (n.id, n.status, SubInfo::of(n)))
                .collect(),
            Some(status),
            Some(done_count(nodes)),
        ),
        // A sublattice not built yet: its graph appears later.
        Err(_) => (Vec::new(), None, None),
    };
    Ok(Snapshot {
        head: json!({
            "status": r.status,
            "done": r.done_count(),
            "total": r.task_count(),
            "end_time": r.end_time,
            "runtime_ms": runtime_ms(r.start_time, r.end_time),
            "error": r.error,
            "data_version": version,
            "graph_done": graph_done,
        }),
        graph_status,
        nodes,
        groups: Vec::new(),
        terminal: r.status.is_terminal(),
    })
}

/// Feeds one dispatch's stream until it ends or the client goes away.
async fn watch_dispatch(
    state: Shared,
    id: Uuid,
    path: Vec<usize>,
    internal: bool,
    tx: mpsc::Sender<Event>,
) {
    let mut changes = state.changes.subscribe();
    let mut seen: Seen = HashMap::new();
    let mut seen_groups: HashMap<usize, Value> = HashMap::new();
    let mut first = true;
    let mut last_head = Value::Null;
    loop {
        changes.borrow_and_update();
        let p = path.clone();
        let snap = blocking(&state, move |s| snapshot(s, id, &p, internal)).await;
        let snap = match snap {
            Ok(s) => s,
            Err(e) => {
                let data = json!({ "error": e.message(), "kind": e.kind() }).to_string();
                let _ = tx.send(Event::default().event("problem").data(data)).await;
                return;
            }
        };
        let reload = !first
            && (snap.nodes.len() != seen.len()
                || snap.nodes.iter().any(|(id, _, _)| !seen.contains_key(id)));
        let mut changed: Vec<Value> = Vec::new();
        let mut subs: Vec<Value> = Vec::new();
        for (nid, status, sub) in &snap.nodes {
            let now = (*status, sub.clone());
            if first || seen.get(nid) != Some(&now) {
                changed.push(json!([nid, status]));
                if let Some(sub) = sub {
                    let mut v = serde_json::to_value(sub).unwrap_or(Value::Null);
                    v["id"] = json!(nid);
                    subs.push(v);
                }
                seen.insert(*nid, now);
            }
        }
        if reload {
            seen = snap
                .nodes
                .iter()
                .map(|(id, s, sub)| (*id, (*s, sub.clone())))
                .collect();
        }
        let mut groups: Vec<Value> = Vec::new();
        for (key, counts) in &snap.groups {
            if first || seen_groups.get(key) != Some(counts) {
                groups.push(json!([key, counts]));
                seen_groups.insert(*key, counts.clone());
            }
        }
        let head_changed = snap.head != last_head;
        if first || reload || !changed.is_empty() || !groups.is_empty() || head_changed {
            let mut data = snap.head.clone();
            data["full"] = json!(first);
            data["reload"] = json!(reload);
            data["graph_status"] = json!(snap.graph_status);
            data["nodes"] = Value::Array(changed);
            data["subs"] = Value::Array(subs);
            if !snap.groups.is_empty() {
                data["groups"] = Value::Array(groups);
            }
            if tx
                .send(Event::default().event("update").data(data.to_string()))
                .await
                .is_err()
            {
                return;
            }
            last_head = snap.head;
        }
        if snap.terminal {
            let _ = tx.send(Event::default().event("end").data("{}")).await;
            return;
        }
        first = false;
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(RECHECK) => {},
            _ = tx.closed() => return,
        }
        tokio::time::sleep(THROTTLE).await;
    }
}
