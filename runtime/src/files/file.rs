//! [`File`]: a file as a value electrons take and return: where it lives (a URI) and what it
//! is (BLAKE3 and size, or size and modification time for a very large one), made readable
//! where a task runs by [`File::path`].
//!
//! This module owns the value, its JSON form and its identity; moving bytes is
//! `strategy.rs`'s, and what a running task may reach is `scope.rs`'s.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::scope;
use super::uri::Location;

/// Files larger than this are known by size and modification time rather than by a BLAKE3 of
/// their content (hashing them would cost more than the work they feed, often).
pub const HASH_LIMIT: u64 = 1 << 30;

/// A file that travels with tasks: a URI (`file:///abs/path`, `ssh://user@host:port/path` or
/// `user@host:path`, `http(s)://...`) and, once known, its content's identity.
///
/// As an electron's parameter it is made readable where the electron runs before use:
/// [`File::path`] gives the local path (the file itself on the same machine; for a task on
/// another host, the copy the executor staged into the task's directory, or one fetched there
/// from an ssh host or over HTTP). Returned by an electron, [`File::output`] names a file the
/// task wrote in its directory, which the executor brings back to the dispatching machine;
/// [`File::new`] names a file where it is (a checkpoint on a cluster's scratch stays there).
///
/// Its identity for `.reuse()` and for fingerprints is its JSON: the URI and the BLAKE3 of
/// its content (or size and mtime over [`HASH_LIMIT`]), so a changed input file is a changed
/// input. A URI named from outside any task (`https://...`, `ssh://...`) is known by its URI
/// alone unless pinned with [`File::with_blake3`].
///
/// ```
/// # covalent_test_support::isolate_home();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("data.csv");
/// std::fs::write(&path, "x\n1\n").unwrap();
/// let f = covalent::File::new(path.to_str().unwrap()).unwrap();
/// assert_eq!(f.size(), Some(4));
/// assert!(f.uri().starts_with("file:///"));
/// assert_eq!(std::fs::read_to_string(f.path().unwrap()).unwrap(), "x\n1\n");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct File {
    uri: String,
    blake3: Option<String>,
    size: Option<u64>,
    mtime: Option<i64>,
}

/// The JSON form: `{"covalent_file": uri, "blake3", "size", "mtime"}`; the key marks a file
/// wherever it sits inside a value, so executors find the files among a task's inputs.
#[derive(Serialize, Deserialize)]
#[serde(rename = "covalent::File")]
struct Repr {
    covalent_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blake3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtime: Option<i64>,
}

/// The JSON key that marks a [`File`].
pub const FILE_KEY: &str = "covalent_file";

impl Serialize for File {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Repr {
            covalent_file: self.uri.clone(),
            blake3: self.blake3.clone(),
            size: self.size,
            mtime: self.mtime,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for File {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = Repr::deserialize(d)?;
        Location::parse(&r.covalent_file).map_err(serde::de::Error::custom)?;
        scope::note_used();
        Ok(File {
            uri: r.covalent_file,
            blake3: r.blake3,
            size: r.size,
            mtime: r.mtime,
        })
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("File");
        d.field("uri", &self.uri);
        if let Some(h) = &self.blake3 {
            d.field("blake3", &&h[..h.len().min(16)]);
        }
        if let Some(n) = self.size {
            d.field("size", &n);
        }
        d.finish()
    }
}

impl fmt::Display for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

/// Identity of a local file: `(size, blake3, mtime)`, BLAKE3 up to [`HASH_LIMIT`].
fn identify(p: &Path) -> std::io::Result<(u64, Option<String>, Option<i64>)> {
    let meta = std::fs::metadata(p)?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            p.display()
        )));
    }
    if meta.len() > HASH_LIMIT {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        return Ok((meta.len(), None, mtime));
    }
    let (n, h) = super::strategy::hash_file(p)?;
    Ok((n, Some(h), None))
}

impl File {
    /// A file named by a URI or a path. A path (or `file://` URI) names a file of the machine
    /// this runs on, which must exist: it is hashed now (its identity). Inside a task on an
    /// ssh host, a path names a file of that host (an `ssh://` URI results). A relative path
    /// resolves against [`task_dir`](crate::task_dir) (the current directory outside tasks).
    /// `ssh://` and `http(s)://` URIs are taken as they are (no I/O).
    pub fn new(uri_or_path: &str) -> std::io::Result<File> {
        scope::note_used();
        let loc = Location::parse(uri_or_path).map_err(std::io::Error::other)?;
        match loc {
            Location::Local(p) => {
                let abs = if p.is_relative() {
                    scope::task_dir().join(p)
                } else {
                    p
                };
                let (size, blake3, mtime) = identify(&abs).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", abs.display()))
                })?;
                let here = scope::with(|s| s.here.clone()).flatten();
                let uri = match here {
                    Some(h) => format!("ssh://{h}{}", abs.display()),
                    None => format!("file://{}", abs.display()),
                };
                Ok(File {
                    uri,
                    blake3,
                    size: Some(size),
                    mtime,
                })
            }
            other => Ok(File {
                uri: other.uri(),
                blake3: None,
                size: None,
                mtime: None,
            }),
        }
    }

    /// A file the running task wrote in its directory (`rel`, relative to
    /// [`task_dir`](crate::task_dir)), returned to the dispatching machine: for a task on
    /// another host, the executor brings it back after the task (into the dispatch's results:
    /// `<results>/<dispatch>/files/<node>-<attempt>/`), checked against the BLAKE3 taken here;
    /// beside the dispatcher it stays where it is. Call it once the file is written.
    pub fn output(rel: &str) -> std::io::Result<File> {
        scope::note_used();
        let p = Path::new(rel);
        let abs = if p.is_relative() {
            scope::task_dir().join(p)
        } else {
            p.to_path_buf()
        };
        let (size, blake3, mtime) = identify(&abs)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", abs.display())))?;
        let digest = match &blake3 {
            Some(h) => h.clone(),
            None => super::strategy::hash_file(&abs)?.1,
        };
        let home = scope::relative_to_task(&abs)
            .and_then(|rel| scope::bring_home(&rel, &digest, size, "output"));
        let uri = match home {
            Some(uri) => uri,
            None => match scope::with(|s| s.here.clone()).flatten() {
                Some(h) => format!("ssh://{h}{}", abs.display()),
                None => format!("file://{}", abs.display()),
            },
        };
        Ok(File {
            uri,
            blake3: Some(digest),
            size: Some(size),
            mtime,
        })
    }

    /// Pins the content this file must have: a transfer that brings anything else fails.
    pub fn with_blake3(mut self, hex: &str) -> File {
        self.blake3 = Some(hex.to_ascii_lowercase());
        self
    }

    /// The URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Where it lives.
    pub fn location(&self) -> Location {
        Location::parse(&self.uri).unwrap_or(Location::Local(PathBuf::from(&self.uri)))
    }

    /// The BLAKE3 of its content, hex, when known.
    pub fn blake3(&self) -> Option<&str> {
        self.blake3.as_deref()
    }

    /// Its size in bytes, when known.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Its name (the last part of its path).
    pub fn file_name(&self) -> String {
        self.location().file_name()
    }

    /// The local path where the file is readable here: inside a task, the file itself when it
    /// is on this machine, the copy the dispatcher staged, or a copy fetched now (over ssh or
    /// HTTP, recorded on the node, checked against the known BLAKE3); outside tasks, a local
    /// file's own path. A failure names the transfer and what to fix (and fails the node as a
    /// `transfer` error).
    pub fn path(&self) -> std::io::Result<PathBuf> {
        let loc = Location::parse(&self.uri).map_err(std::io::Error::other)?;
        scope::materialise(&loc, &self.uri, self.size, self.blake3.as_deref())
    }

    /// Reads the whole file (after [`File::path`]).
    pub fn read_to_string(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.path()?)
    }

    /// Copies the file to the local path `dest` (written whole or not at all, checked against
    /// the known BLAKE3), from wherever it lives: for a program that reads a result file
    /// after its dispatch.
    pub fn fetch_to(&self, dest: &Path) -> std::io::Result<()> {
        let loc = Location::parse(&self.uri).map_err(std::io::Error::other)?;
        super::strategy::fetch(&loc, dest, Some((self.size, self.blake3.as_deref())))
            .map(|_| ())
            .map_err(std::io::Error::other)
    }
}

/// Every [`File`] inside a value's JSON (objects with the `covalent_file` key).
pub fn files_in_json(v: &serde_json::Value, out: &mut Vec<File>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.contains_key(FILE_KEY)
                && let Ok(f) = serde_json::from_value::<File>(v.clone())
            {
                out.push(f);
                return;
            }
            for x in m.values() {
                files_in_json(x, out);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                files_in_json(x, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_through_json_and_is_found_inside_values() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        std::fs::write(&p, "hello").unwrap();
        let f = File::new(p.to_str().unwrap()).unwrap();
        assert_eq!(f.size(), Some(5));
        assert_eq!(
            f.blake3(),
            Some(blake3::hash(b"hello").to_hex().as_str()),
            "a local file is known by its content"
        );
        let json = serde_json::to_value(vec![(1, f.clone())]).unwrap();
        let mut found = Vec::new();
        files_in_json(&json, &mut found);
        assert_eq!(found, vec![f.clone()]);
        let back: Vec<(i32, File)> = serde_json::from_value(json).unwrap();
        assert_eq!(back[0].1, f);

        // Changed content is a changed value (what `.reuse()` compares).
        std::fs::write(&p, "hellO").unwrap();
        assert_ne!(File::new(p.to_str().unwrap()).unwrap(), f);

        let e = File::new(d.path().join("missing").to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        let bad: Result<File, _> = serde_json::from_str(r#"{"covalent_file": "s3://b/k"}"#);
        assert!(bad.is_err());
    }
}
