//! The HTML pages of `covalent ui` and its embedded assets.
//!
//! Pages are small server-made shells (title, CSRF token, the dispatch id) that load the
//! embedded scripts, which draw everything from the JSON API. Assets are compiled into the
//! binary with `include_bytes!` and looked up by exact name in [`ASSETS`]: the server never
//! reads a file from disk, so no request can name one. Errors have their own page: unknown
//! dispatches are a 404 page, a store that cannot be read is a page that says why.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::respond::{api_error, error_page, html, not_found_page, shell};
use super::state::{Shared, UiError, blocking};

/// One embedded file: its name under `/assets/`, its content type, its bytes.
pub struct Asset {
    /// The name under `/assets/`.
    pub name: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// Every file the server can send besides the pages.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/common.js"),
    },
    Asset {
        name: "list.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/list.js"),
    },
    Asset {
        name: "graph.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/graph.js"),
    },
    Asset {
        name: "dispatch.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/dispatch.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/favicon.svg"),
    },
];

/// `GET /assets/{name}`: an embedded file, with an `ETag` so browsers revalidate cheaply.
pub async fn asset(Path(name): Path<String>, req: Request) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return not_found_page(&format!("there is no asset `{name}`"));
    };
    let etag = format!(
        "\"{}-{}\"",
        env!("CARGO_PKG_VERSION"),
        &blake3::hash(a.body).to_hex()[..16]
    );
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            )],
            a.body,
        )
            .into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// The page for an error of the store or a lookup.
pub fn ui_error_page(e: &UiError) -> Response {
    let (title, detail) = match e {
        UiError::NoStore { .. } => (
            "Nothing recorded yet",
            Some("Dispatches appear here once a workflow runs with recording on."),
        ),
        UiError::Store(covalent::store::StoreError::UnknownDispatch { .. }) => {
            ("Unknown dispatch", None)
        }
        UiError::Store(covalent::store::StoreError::Ambiguous { .. }) => {
            ("Ambiguous dispatch id", None)
        }
        UiError::Store(_) => (
            "The store cannot be read",
            Some("Fix or move the file (or point COVALENT_HOME elsewhere) and reload this page."),
        ),
        _ => ("Error", None),
    };
    error_page(e.status(), title, &e.message(), detail)
}

/// `GET /`: the dispatch list. A store that exists but cannot be read is an error page; a
/// missing one is an empty list that says so.
pub async fn list_page(State(state): State<Shared>) -> Response {
    let store = blocking(&state, |s| Ok(s.store.get()?.is_some())).await;
    if let Err(e) = store {
        return ui_error_page(&e);
    }
    let main = r#"<main class="list-page">
  <section class="list-head">
    <h1>Dispatches</h1>
    <div class="counts" id="counts" role="group" aria-label="filter by status"></div>
  </section>
  <section class="toolbar">
    <input type="search" id="search" placeholder="Search by lattice name or id" aria-label="search">
    <select id="status" aria-label="status">
      <option value="">All statuses</option>
      <option>RUNNING</option><option>COMPLETED</option><option>FAILED</option>
      <option>CANCELLED</option><option>INTERRUPTED</option>
    </select>
    <select id="page-size" aria-label="rows per page">
      <option value="25">25 per page</option><option value="50" selected>50 per page</option>
      <option value="100">100 per page</option><option value="250">250 per page</option>
    </select>
  </section>
  <div class="notice" id="notice" hidden></div>
  <table class="dispatches" id="dispatches">
    <thead><tr>
      <th data-sort="id">ID</th><th data-sort="lattice">Lattice</th><th data-sort="status">Status</th>
      <th data-sort="tasks" class="num">Tasks</th><th data-sort="start">Started</th>
      <th data-sort="runtime" class="num">Runtime</th>
    </tr></thead>
    <tbody></tbody>
  </table>
  <nav class="pager" id="pager"></nav>
</main>"#;
    let sec = &state.security;
    let path = state.store.path.display().to_string();
    html(
        StatusCode::OK,
        shell(
            "Dispatches",
            "page-list",
            &[("covalent-csrf", sec.csrf()), ("covalent-store", &path)],
            main,
            &["common.js", "list.js"],
        ),
    )
}

/// `GET /dispatches/{id}`: one dispatch. A unique prefix redirects to the full id; unknown ids
/// are the 404 page.
pub async fn dispatch_page(
    State(state): State<Shared>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let given = id.clone();
    let resolved = blocking(&state, move |s| {
        let store = s.store.require()?;
        let uuid = store.resolve(&given)?;
        // `resolve` takes any well-formed full id as it is: `status` says whether it exists.
        store.status(uuid)?;
        Ok(uuid)
    })
    .await;
    let uuid = match resolved {
        Ok(v) => v,
        Err(e) => return ui_error_page(&e),
    };
    let full = uuid.to_string();
    if full != id {
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        return Redirect::to(&format!("/dispatches/{full}{query}")).into_response();
    }
    let main = r#"<main class="dispatch-page">
  <section class="summary" id="summary">
    <div class="summary-head">
      <h1 id="lattice-name">…</h1>
      <span class="badge" id="dispatch-status"></span>
      <span class="spacer"></span>
      <button type="button" class="button danger" id="cancel-dispatch" hidden>Cancel dispatch</button>
    </div>
    <div class="facts" id="facts"></div>
    <div class="io" id="io"></div>
  </section>
  <section class="graph-panel" id="graph-panel">
    <div class="graph-toolbar">
      <nav class="graph-crumbs" id="graph-crumbs"></nav>
      <span class="spacer"></span>
      <input type="search" id="node-search" placeholder="Find node" aria-label="find node">
      <label class="toggle"><input type="checkbox" id="show-internal"> internal nodes</label>
      <button type="button" class="button small" id="direction" title="layout direction">Top → bottom</button>
      <button type="button" class="button small" id="zoom-out" title="zoom out">−</button>
      <button type="button" class="button small" id="zoom-in" title="zoom in">+</button>
      <button type="button" class="button small" id="zoom-fit" title="fit the graph">Fit</button>
    </div>
    <div class="graph-wrap" id="graph-wrap">
      <svg id="graph" class="graph" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="transport graph"></svg>
      <div class="graph-status" id="graph-status"></div>
      <div class="legend" id="legend"></div>
    </div>
  </section>
  <aside class="drawer" id="drawer" hidden aria-label="node details">
    <div class="drawer-head">
      <h2 id="drawer-title"></h2>
      <button type="button" class="button small" id="drawer-close" title="close">✕</button>
    </div>
    <div class="drawer-body" id="drawer-body"></div>
  </aside>
</main>"#;
    let sec = &state.security;
    html(
        StatusCode::OK,
        shell(
            &format!("Dispatch {}", &full[..8]),
            "page-dispatch",
            &[("covalent-csrf", sec.csrf()), ("covalent-dispatch", &full)],
            main,
            &["common.js", "graph.js", "dispatch.js"],
        ),
    )
}

/// Every other address: the 404 page (JSON under `/api`).
pub async fn fallback(req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/api") {
        return api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no API endpoint {path}; GET /api lists them"),
        );
    }
    not_found_page(&format!("there is no page {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_are_unique_and_plain() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(ASSETS[..i].iter().all(|b| b.name != a.name));
            assert!(!a.name.contains('/') && !a.name.contains(".."));
            assert!(!a.body.is_empty());
        }
    }
}
