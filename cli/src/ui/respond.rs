//! The responses every part of `covalent ui` sends: the page shell, HTML and JSON error
//! responses, and HTML escaping. Used by the pages, the API and the security layer.
//!
//! This module owns the response shapes only; it knows nothing of the store or the state.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: the common head and header bar around `main`, then `scripts`.
pub(super) fn shell(
    title: &str,
    body_class: &str,
    meta: &[(&str, &str)],
    main: &str,
    scripts: &[&str],
) -> String {
    let meta: String = meta
        .iter()
        .map(|(k, v)| format!("<meta name=\"{}\" content=\"{}\">\n", esc(k), esc(v)))
        .collect();
    let scripts: String = scripts
        .iter()
        .map(|s| format!("<script src=\"/assets/{s}\"></script>\n"))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · covalent</title>
{meta}<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/app.css">
</head>
<body class="{body_class}">
<header class="topbar">
  <a class="brand" href="/"><img src="/assets/favicon.svg" alt="" width="22" height="22">covalent</a>
  <nav class="crumbs" id="crumbs"><a href="/">Dispatches</a></nav>
  <span class="spacer"></span>
  <span class="live" id="live" title="live updates">live</span>
</header>
{main}
{scripts}</body>
</html>
"#,
        title = esc(title),
    )
}

/// An HTML response with `status` that is never cached.
pub(super) fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, Html(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A page that says what went wrong.
pub fn error_page(
    status: StatusCode,
    title: &str,
    message: &str,
    detail: Option<&str>,
) -> Response {
    let detail = detail
        .map(|d| format!("<p class=\"muted\">{}</p>", esc(d)))
        .unwrap_or_default();
    let main = format!(
        r#"<main class="error-page" data-status="{code}">
  <h1>{title}</h1>
  <p class="error-code">{code} {reason}</p>
  <p class="error-message" id="error-message">{message}</p>
  {detail}
  <p><a class="button" href="/">All dispatches</a></p>
</main>"#,
        code = status.as_u16(),
        reason = esc(status.canonical_reason().unwrap_or("")),
        title = esc(title),
        message = esc(message),
    );
    html(status, shell(title, "page-error", &[], &main, &[]))
}

/// The 404 page.
pub fn not_found_page(message: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, "Not found", message, None)
}

/// A JSON error: `{"error": message, "kind": kind}`.
pub fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "kind": kind });
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
