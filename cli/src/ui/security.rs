//! The rules every request of `covalent ui` passes before a handler sees it.
//!
//! - **Host.** Bound to a loopback address, the server answers only requests whose `Host` names
//!   a loopback address (`127.0.0.1`, `localhost`, `[::1]`), so a web page cannot reach it
//!   through DNS rebinding.
//! - **Token.** With `--token` (required for any other address), every request carries it: as
//!   `Authorization: Bearer TOKEN`, as `X-Covalent-Token: TOKEN`, or in the cookie that opening
//!   `/?token=TOKEN` sets (the link `covalent ui` prints; it redirects to the same page
//!   without the token in the address).
//! - **Cross-site requests.** Anything but GET and HEAD must be same-origin (`Origin`, when
//!   sent, equal to `http://` + `Host`; `Sec-Fetch-Site`, when sent, `same-origin` or `none`),
//!   JSON (`Content-Type: application/json`, which a cross-site form cannot send) and carry
//!   the per-server CSRF token (`X-Covalent-Csrf`) that the pages embed and `GET /api` returns.
//! - **Headers.** Every response forbids framing, sniffing and any script, style or connection
//!   not from the server itself (`Content-Security-Policy`).

use std::net::IpAddr;

use anyhow::{Result, bail};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use super::respond;

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-covalent-csrf";
/// The header that may carry the access token.
pub const TOKEN_HEADER: &str = "x-covalent-token";

/// What the guard checks.
#[derive(Debug)]
pub struct Security {
    token: Option<String>,
    csrf: String,
    /// Only loopback `Host` headers (bound to a loopback address).
    loopback_only: bool,
    /// The cookie that carries the token (per port: cookies ignore ports).
    cookie: String,
}

impl Security {
    /// The rules for a server bound to `host`:`port`. Refuses a non-loopback address without a
    /// token, and tokens too short to be secret.
    pub fn new(host: IpAddr, port: u16, token: Option<String>) -> Result<Self> {
        let token = token.filter(|t| !t.is_empty());
        if !host.is_loopback() && token.is_none() {
            bail!(
                "covalent ui listens on {host}, which is not a loopback address: anyone who can \
                 reach it could read and cancel your dispatches. Give a secret with --token \
                 (or COVALENT_UI_TOKEN), e.g. --token $(openssl rand -hex 16)"
            );
        }
        let cookie_safe = |b: u8| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
        };
        if let Some(t) = &token
            && (t.len() < 12 || !t.bytes().all(cookie_safe))
        {
            bail!(
                "the --token must be at least 12 characters of letters, digits and - _ . ~ + / =, \
                 e.g. $(openssl rand -hex 16)"
            );
        }
        Ok(Security {
            token,
            csrf: random_hex(16)?,
            loopback_only: host.is_loopback(),
            cookie: format!("covalent_ui_{port}"),
        })
    }

    /// The CSRF token pages embed.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The access token, if one is required.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The middleware: checks the request, then adds the security headers to the response.
pub async fn guard(State(sec): State<Arc<Security>>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api");
    let refuse = |status: StatusCode, msg: &str| -> Response {
        with_headers(if api {
            respond::api_error(status, "forbidden", msg)
        } else {
            respond::error_page(status, "Not allowed", msg, None)
        })
    };
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    if sec.loopback_only && !is_loopback_host(&host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this server answers only requests addressed to a loopback name \
             (127.0.0.1, localhost or [::1])",
        );
    }
    if let Some(token) = &sec.token {
        let query_token = query_param(req.uri().query().unwrap_or(""), "token");
        if let Some(given) = query_token {
            if req.method() == Method::GET && same_secret(&given, token) {
                return with_headers(token_redirect(&req, &sec.cookie, token));
            }
            return refuse(StatusCode::UNAUTHORIZED, "wrong token");
        }
        if !carries_token(headers, &sec.cookie, token) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this covalent ui needs its token: open the link that `covalent ui` printed \
                 (it ends in ?token=...), or send `Authorization: Bearer TOKEN`",
            );
        }
    }
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && let Err(why) = same_origin_json(headers, &host, &sec.csrf)
    {
        return refuse(StatusCode::FORBIDDEN, &why);
    }
    with_headers(next.run(req).await)
}

/// Whether a `Host` header names a loopback address (any port).
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, _)) => v6,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip: IpAddr| ip.is_loopback())
}

fn carries_token(headers: &HeaderMap, cookie: &str, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same_secret(t.trim(), token));
    let header = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| same_secret(t.trim(), token));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == cookie && same_secret(v, token));
    bearer || header || cookie
}

/// 303 to the same address without `token=`, setting the cookie.
fn token_redirect(req: &Request, cookie: &str, token: &str) -> Response {
    let rest: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("token"))
        .collect();
    let mut target = req.uri().path().to_string();
    if !rest.is_empty() {
        target.push('?');
        target.push_str(&rest.join("&"));
    }
    let mut resp = (StatusCode::SEE_OTHER, "").into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&target) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{cookie}={token}; Path=/; HttpOnly; SameSite=Strict"
    )) {
        h.insert(header::SET_COOKIE, v);
    }
    resp
}

/// The cross-site checks of state-changing requests.
fn same_origin_json(headers: &HeaderMap, host: &str, csrf: &str) -> Result<(), String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = get("origin")
        && origin != format!("http://{host}")
    {
        return Err(format!(
            "cross-site request refused: Origin {origin} is not this server (http://{host})"
        ));
    }
    if let Some(site) = get("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return Err(format!(
            "cross-site request refused (Sec-Fetch-Site: {site})"
        ));
    }
    let json =
        get("content-type").is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !json {
        return Err("state-changing requests must be JSON (Content-Type: application/json)".into());
    }
    if !get(CSRF_HEADER).is_some_and(|t| same_secret(t, csrf)) {
        return Err(format!(
            "missing or wrong CSRF token: send the header {CSRF_HEADER} with the csrf_token \
             of GET /api (pages embed it)"
        ));
    }
    Ok(())
}

/// The value of `name` in a query string, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

/// Decodes `%XX` and `+`.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Adds the headers every response carries.
fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "127.0.0.1:48008",
            "localhost:1",
            "LOCALHOST",
            "[::1]:80",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example:48008",
            "10.0.0.1:48008",
            "",
            "[::1",
            "localhost.evil",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn tokens_are_required_off_loopback_and_must_be_long() {
        let lan: IpAddr = "0.0.0.0".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(Security::new(lan, 1, None).is_err());
        assert!(Security::new(lan, 1, Some("short".into())).is_err());
        assert!(Security::new(lan, 1, Some("0123456789ab;cdef".into())).is_err());
        assert!(Security::new(lan, 1, Some("0123456789abcdef".into())).is_ok());
        let s = Security::new(lo, 1, None).unwrap();
        assert_eq!(s.csrf().len(), 32);
        assert_ne!(s.csrf(), Security::new(lo, 1, None).unwrap().csrf());
    }

    #[test]
    fn query_parameters_decode() {
        assert_eq!(query_param("a=1&token=x%2By+z", "token").unwrap(), "x+y z");
        assert_eq!(query_param("token", "token").unwrap(), "");
        assert_eq!(query_param("a=1", "token"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
