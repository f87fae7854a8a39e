//! The JSON API of `covalent ui` (the pages draw everything from it; scripts may use it too).
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /api` | version, store, `csrf_token`, the endpoint list |
//! | `GET /api/dispatches?status=&search=&sort=&order=&limit=&offset=` | a page of dispatch summaries, the number matching, counts per status |
//! | `GET /api/dispatches/{id}?internal=` | a dispatch (inputs, result, error, times, tasks) and its top-level graph (summarized above `GRAPH_FULL_MAX` tasks) |
//! | `GET /api/dispatches/{id}/record` | the whole record, as `covalent result --json` prints it |
//! | `GET /api/dispatches/{id}/sublattices/{path}` | the graph of a sublattice node (`3`, `3/1`, ...) |
//! | `GET /api/dispatches/{id}/nodes?offset=&limit=&internal=&group=` | a page of top-level nodes (of one group of a summarized graph with `group`) |
//! | `GET /api/dispatches/{id}/nodes/{path}` | one node, everything recorded about it |
//! | `GET /api/dispatches/{id}/events?path=` | server-sent events: node status changes, then `end` |
//! | `GET /api/events` | server-sent events: `change` whenever the store changes |
//! | `POST /api/dispatches/{id}/cancel` | `{"nodes": [..]}` (optional): asks for cancellation |
//!
//! Ids may be unique prefixes. Errors are `{"error": "...", "kind": "..."}` with a 4xx or 5xx
//! status: 404 for unknown dispatches, nodes and a store that does not exist yet, 503 for a
//! store that cannot be read, 409 to cancel a dispatch that already ended.
//!
//! The handlers are split by resource, over two shared layers:
//!
//! - [`reply`]: how an answer leaves (errors as JSON, bodies serialized ahead of time).
//! - [`graph`]: node paths and the walk down to the graph a path names.
//! - [`shape`]: the JSON shapes several answers share (graph nodes, sublattice summaries,
//!   runtimes).
//! - [`index`]: `GET /api` and the endpoint list; [`list`]: the dispatch list;
//!   [`dispatch`]: one dispatch, its record and its sublattice graphs; [`nodes`]: a page of
//!   nodes; [`node`]: one node; [`cancel`]: cancellation requests.
//!
//! This file only declares the parts and re-exports what the router and the event streams
//! use; the parts import each other by their own paths, never through here. The event
//! streams themselves live in `ui::events`.

mod cancel;
mod dispatch;
mod graph;
mod index;
mod list;
mod node;
mod nodes;
mod reply;
mod shape;

pub use crate::ui::api::cancel::cancel;
pub use crate::ui::api::dispatch::{dispatch, record, sublattice, wants_internal};
pub use crate::ui::api::graph::{graph_at, parse_path};
pub use crate::ui::api::index::index;
pub use crate::ui::api::list::list;
pub use crate::ui::api::node::node;
pub use crate::ui::api::nodes::nodes;
pub use crate::ui::api::reply::ApiError;
pub use crate::ui::api::shape::{SubInfo, done_count, runtime_ms, status_counts};
