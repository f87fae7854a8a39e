//! `covalent ui`: a web UI to watch, inspect and cancel dispatches, served by the binary
//! itself (axum on a small tokio runtime) from the store that the other commands read.
//!
//! - [`pages`]: the HTML shells and the embedded assets (hand-written CSS and JS, compiled in;
//!   nothing is read from disk or fetched from elsewhere at run time).
//! - [`api`]: the JSON API the pages draw from (documented in its module and the README).
//! - [`events`]: server-sent events driven by polling the store's `data_version`.
//! - [`security`]: loopback-only by default, the access token, cross-site request checks.
//! - [`state`]: the shared state, the store handle and the UI's error type.
//!
//! The store is opened lazily: a server started before anything was recorded shows an empty
//! list until the first dispatch, and a corrupt store is an error page, never a crash.

mod api;
mod events;
mod pages;
mod respond;
mod security;
mod state;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, Result};
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::cli::UiArgs;
use crate::context::Context;
use security::Security;
use state::{AppState, Shared};

/// Runs `covalent ui` until interrupted.
pub fn run(ctx: Context, args: &UiArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("covalent-ui")
        .enable_all()
        .build()
        .context("cannot start the web server's runtime")?;
    runtime.block_on(serve(ctx, args))
}

/// The routes, behind the security guard.
fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(pages::list_page))
        .route("/dispatches/{id}", get(pages::dispatch_page))
        .route("/assets/{name}", get(pages::asset))
        .route("/api", get(api::index))
        .route("/api/dispatches", get(api::list))
        .route("/api/events", get(events::list_events))
        .route("/api/dispatches/{id}", get(api::dispatch))
        .route("/api/dispatches/{id}/record", get(api::record))
        .route(
            "/api/dispatches/{id}/sublattices/{*path}",
            get(api::sublattice),
        )
        .route("/api/dispatches/{id}/nodes", get(api::nodes))
        .route("/api/dispatches/{id}/nodes/{*path}", get(api::node))
        .route("/api/dispatches/{id}/events", get(events::dispatch_events))
        .route("/api/dispatches/{id}/cancel", post(api::cancel))
        .fallback(pages::fallback)
        .layer(from_fn_with_state(state.security.clone(), security::guard))
        .with_state(state)
}

async fn serve(ctx: Context, args: &UiArgs) -> Result<()> {
    // Refuse a bad token setting before touching the network.
    Security::new(args.host, args.port, args.token.clone())?;
    let addr = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (choose another port with --port, or 0 for any free one)")
    })?;
    let bound = listener.local_addr()?;
    let security = Security::new(args.host, bound.port(), args.token.clone())?;
    let state = AppState::new(ctx.config, security);
    let url = url_of(bound, state.security.token());
    let mut banner = format!("covalent ui: {url}\n");
    let exists = if state.store.path.exists() {
        ""
    } else {
        " (does not exist yet: nothing recorded)"
    };
    banner.push_str(&format!("store: {}{exists}\n", state.store.path.display()));
    if bound.ip().is_unspecified() {
        banner.push_str(&format!(
            "listening on every interface, port {}; every request needs the token\n",
            bound.port()
        ));
    }
    banner.push_str("press Ctrl-C to stop\n");
    // A closed stdout (the terminal went away, a script read the first line) must not stop
    // the server: the banner is best effort.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    if args.open {
        open_browser(&url);
    }
    tokio::spawn(events::poll_versions(state.clone()));
    let app = router(state);
    tokio::select! {
        r = axum::serve(listener, app) => r.context("the web server stopped")?,
        _ = tokio::signal::ctrl_c() => eprintln!("covalent ui: stopped"),
    }
    Ok(())
}

/// The address to open: `http://HOST:PORT/`, with `?token=` when one is required.
fn url_of(addr: SocketAddr, token: Option<&str>) -> String {
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let query = token
        .map(|t| format!("?token={}", url_encode(t)))
        .unwrap_or_default();
    format!("http://{host}:{}/{query}", addr.port())
}

/// Percent-encodes everything but unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asks the desktop to open `url`; says so when it cannot.
fn open_browser(url: &str) {
    let (cmd, pre): (&str, &[&str]) = if cfg!(target_os = "macos") {
        ("open", &[])
    } else if cfg!(windows) {
        ("cmd", &["/C", "start", ""])
    } else {
        ("xdg-open", &[])
    };
    let spawned = std::process::Command::new(cmd)
        .args(pre)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("covalent ui: could not open a browser ({cmd}: {e}); open {url} yourself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_reachable_host_and_the_token() {
        let a: SocketAddr = "127.0.0.1:48008".parse().unwrap();
        assert_eq!(url_of(a, None), "http://127.0.0.1:48008/");
        let a: SocketAddr = "0.0.0.0:9".parse().unwrap();
        assert_eq!(url_of(a, Some("abc")), "http://127.0.0.1:9/?token=abc");
        let a: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(url_of(a, None), "http://[::1]:9/");
        assert_eq!(url_encode("a&b c~"), "a%26b%20c~");
    }
}
