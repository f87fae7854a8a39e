//! Where a file lives, as a task or a transfer names it: [`Location`], parsed from a URI
//! (`file:///abs`, `ssh://[user@]host[:port]/path`, `[user@]host:path`, `http(s)://...`) or a
//! plain path.
//!
//! This module owns parsing and the canonical text of a location; it does no I/O.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a file lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// A path on the machine that reads it (`file:///abs/path`, or a plain path).
    Local(PathBuf),
    /// A file on a host reached with OpenSSH (`ssh://user@host:port/path` or `user@host:path`).
    Ssh(SshPath),
    /// A file served over HTTP or HTTPS (downloads only).
    Http(String),
}

/// A file on a host reached with OpenSSH.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SshPath {
    /// The login name, if given (else ssh's default for the host).
    pub user: Option<String>,
    /// The host name or address (as ssh and its config know it).
    pub host: String,
    /// The port, if not the default.
    pub port: Option<u16>,
    /// The path there: absolute, or relative to the login directory.
    pub path: String,
}

impl SshPath {
    /// `user@host` (or `host`), what ssh, rsync and scp take.
    pub fn target(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// `user@host:port` (or parts of it): the authority of its `ssh://` URI.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.target()),
            None => self.target(),
        }
    }
}

impl Location {
    /// Parses a URI or a path. A relative plain path stays relative (see
    /// [`Location::absolute`]).
    pub fn parse(s: &str) -> Result<Location, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("an empty file location".into());
        }
        if let Some(rest) = s.strip_prefix("file://") {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(format!(
                    "`{s}`: a file:// URI needs an absolute path (file:///data/x.csv); write a relative path without file://"
                ));
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let host = s.split_once("://").map(|x| x.1).unwrap_or_default();
            if host.is_empty() || host.starts_with('/') {
                return Err(format!("`{s}`: an HTTP URL needs a host"));
            }
            return Ok(Location::Http(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix("ssh://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => return Err(format!("`{s}`: an ssh:// URI needs a path after the host")),
            };
            let path = match path.strip_prefix("/~/") {
                Some(rel) => rel.to_string(),
                None => path.to_string(),
            };
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_string()), h),
                None => (None, authority),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| format!("`{s}`: `{p}` is not a port number"))?,
                    ),
                ),
                None => (hostport, None),
            };
            return ssh(s, user, host, port, path);
        }
        if let Some(scheme) = s.split_once("://").map(|x| x.0)
            && !scheme.contains('/')
        {
            return Err(format!(
                "`{s}`: `{scheme}://` is not a transfer this library makes (file://, ssh://, http:// and https:// are)"
            ));
        }
        // scp's form: `[user@]host:path`, a colon before any slash.
        if let Some((head, path)) = s.split_once(':')
            && !head.contains('/')
            && !head.is_empty()
        {
            let (user, host) = match head.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_string()), h),
                None => (None, head),
            };
            let path = if path.is_empty() { "." } else { path };
            return ssh(s, user, host, None, path.to_string());
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    /// A relative local path made absolute against `base`; other locations as they are.
    pub fn absolute(self, base: &Path) -> Location {
        match self {
            Location::Local(p) if p.is_relative() => Location::Local(base.join(p)),
            other => other,
        }
    }

    /// The canonical URI: `file:///abs` (a relative path stays as written), `ssh://...`, the URL.
    pub fn uri(&self) -> String {
        match self {
            Location::Local(p) if p.is_absolute() => format!("file://{}", p.display()),
            Location::Local(p) => p.display().to_string(),
            Location::Ssh(s) => {
                let path = if s.path.starts_with('/') {
                    s.path.clone()
                } else {
                    format!("/~/{}", s.path)
                };
                format!("ssh://{}{path}", s.authority())
            }
            Location::Http(u) => u.clone(),
        }
    }

    /// The file's name (its path's last part), for where it lands when staged.
    pub fn file_name(&self) -> String {
        let path = match self {
            Location::Local(p) => return name_of(&p.display().to_string()),
            Location::Ssh(s) => s.path.as_str(),
            Location::Http(u) => {
                let u = u.split(['?', '#']).next().unwrap_or(u);
                u.split_once("://").map(|x| x.1).unwrap_or(u)
            }
        };
        name_of(path)
    }

    /// What kind of location this is, for messages and records.
    pub fn kind(&self) -> &'static str {
        match self {
            Location::Local(_) => "local",
            Location::Ssh(_) => "ssh",
            Location::Http(_) => "http",
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

fn name_of(path: &str) -> String {
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if name.is_empty() || name == "." || name == ".." || name == "~" {
        "file".to_string()
    } else {
        name.to_string()
    }
}

fn ssh(
    s: &str,
    user: Option<String>,
    host: &str,
    port: Option<u16>,
    path: String,
) -> Result<Location, String> {
    if host.is_empty() {
        return Err(format!("`{s}`: no host name"));
    }
    if user.as_deref() == Some("") {
        return Err(format!("`{s}`: an empty user name before `@`"));
    }
    if path.is_empty() {
        return Err(format!("`{s}`: no path on the host"));
    }
    Ok(Location::Ssh(SshPath {
        user,
        host: host.to_string(),
        port,
        path,
    }))
}

/// Checks a path inside a task's directory (`stage_in`'s destination, `stage_out`'s source):
/// relative, with no `..` leaving it.
pub fn check_task_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("an empty path in the task's directory".into());
    }
    if p.starts_with('/') || p.contains("://") {
        return Err(format!(
            "`{p}` must be a path relative to the task's directory (it is where the task runs, not a URI)"
        ));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("`{p}` leaves the task's directory (`..`)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh_of(s: &str) -> SshPath {
        match Location::parse(s).unwrap() {
            Location::Ssh(p) => p,
            other => panic!("{s} parsed as {other:?}"),
        }
    }

    #[test]
    fn uris_and_paths_parse_to_what_they_name() {
        assert_eq!(
            Location::parse("file:///data/x.csv").unwrap(),
            Location::Local("/data/x.csv".into())
        );
        assert_eq!(
            Location::parse("data/x.csv").unwrap(),
            Location::Local("data/x.csv".into())
        );
        let p = ssh_of("ssh://me@cluster:2222/scratch/ckpt.bin");
        assert_eq!(
            (p.user.as_deref(), p.host.as_str(), p.port, p.path.as_str()),
            (Some("me"), "cluster", Some(2222), "/scratch/ckpt.bin")
        );
        let p = ssh_of("me@cluster:runs/out.h5");
        assert_eq!(
            (p.target(), p.path.as_str()),
            ("me@cluster".into(), "runs/out.h5")
        );
        assert_eq!(
            Location::Ssh(p).uri(),
            "ssh://me@cluster/~/runs/out.h5",
            "a home-relative path keeps its meaning in URI form"
        );
        assert_eq!(ssh_of("ssh://me@cluster/~/runs/out.h5").path, "runs/out.h5");
        assert_eq!(
            Location::parse("https://example.org/d/x.csv?v=2")
                .unwrap()
                .file_name(),
            "x.csv"
        );
        assert_eq!(
            Location::parse("./odd:name.csv").unwrap(),
            Location::Local("./odd:name.csv".into())
        );
    }

    #[test]
    fn bad_locations_say_what_is_wrong() {
        for (s, says) in [
            ("", "empty"),
            ("file://data/x", "absolute path"),
            ("s3://bucket/key", "s3://"),
            ("ssh://host", "path after the host"),
            ("ssh://host:port/x", "not a port number"),
            ("@host:x", "empty user name"),
            ("https://", "needs a host"),
        ] {
            let e = Location::parse(s).unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
        assert!(check_task_path("../x").unwrap_err().contains(".."));
        assert!(check_task_path("/x").unwrap_err().contains("relative"));
        assert!(check_task_path("out/x.csv").is_ok());
    }
}
