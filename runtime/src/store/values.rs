//! Large values live in files beside the store, not in its rows.
//!
//! A value whose JSON is longer than [`INLINE_LIMIT`] is streamed, as it is serialized, into
//! `<results dir>/<dispatch id>/values/<digest>.json` (the digest is BLAKE3 of the JSON text,
//! so a value stored twice, such as a dispatch's result that is also its last node's output,
//! is one file). The row then holds a reference (`{"h": digest, "n": bytes}`), and readers
//! that only show a dispatch never open the file. The JSON is never built in memory whole:
//! the first [`INLINE_LIMIT`] bytes are buffered, the rest goes straight to the file.
//!
//! A file is complete before the commit that references it (written under a temporary name,
//! then renamed), so a reader never sees a reference to a partial file; a process killed
//! between the two leaves at most a file no row references, which `purge` deletes with its
//! dispatch's directory.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::value::Output;

/// Longest JSON kept in a row (64 KiB); longer values go to a file.
pub const INLINE_LIMIT: usize = 64 * 1024;

/// Where the value files of a dispatch are, given its results dir.
pub(crate) fn dir_of(results_dir: &Path) -> PathBuf {
    results_dir.join("values")
}

/// A value kept in a file: what the row holds in its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// BLAKE3 of the JSON text, hex.
    pub h: String,
    /// Length of the JSON text in bytes.
    pub n: u64,
}

impl Stored {
    /// The file holding it, among the value files in `dir`.
    pub(crate) fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.json", self.h))
    }

    /// As a record shows it, for the dispatch whose results dir is `results`.
    pub(crate) fn file(&self, results: &Path) -> crate::record::ValueFile {
        crate::record::ValueFile {
            path: self.path_in(&dir_of(results)),
            bytes: self.n,
            digest: self.h.clone(),
        }
    }
}

/// Writes `value`'s JSON to `buf` when it is short; otherwise into a file among the value
/// files of the dispatch whose results dir is `results` (created if needed), returning its
/// reference and leaving `buf` as it was. A file that cannot be
/// written is reported and the value kept in the row after all (a slow row beats a lost value).
pub(crate) fn write(value: &Output, buf: &mut Vec<u8>, results: &Path) -> Option<Stored> {
    let dir = dir_of(results);
    if let Some((path, h, n)) = value.json_file() {
        let stored = Stored {
            h: h.to_string(),
            n,
        };
        if path == stored.path_in(&dir) {
            // A value that came back from a worker as a file, already moved among this
            // dispatch's value files: named, not copied, and kept from now on.
            value.keep_file();
            return Some(stored);
        }
    }
    let mark = buf.len();
    match write_in(value, buf, &dir, "") {
        Ok(None) => None,
        Ok(Some(stored)) => {
            *LAST.lock().unwrap() =
                Some((value.downgrade(), results.to_path_buf(), stored.clone()));
            Some(stored)
        }
        Err(e) => {
            eprintln!(
                "covalent: warning: cannot write a value file in {}: {e}; the value is kept in the store's row instead",
                dir.display()
            );
            buf.truncate(mark);
            value.write_json(buf);
            None
        }
    }
}

/// Writes `value`'s JSON to `buf` when it is short; otherwise streams it into
/// `dir/<prefix><digest>.json` (created if needed, written under a temporary name and renamed)
/// and returns its reference, leaving `buf` as it was. A value that cannot be serialized
/// leaves the error's JSON string in `buf` (see [`Output::write_json`]).
pub(crate) fn write_in(
    value: &Output,
    buf: &mut Vec<u8>,
    dir: &Path,
    prefix: &str,
) -> io::Result<Option<Stored>> {
    write_with(
        |w| value.write_json_to(w),
        |buf| value.write_json(buf),
        buf,
        dir,
        prefix,
    )
}

/// [`write`] for a JSON value (a lattice input as recorded): short, into `buf`; else into
/// a value file of the dispatch whose results dir is `results`. A file that cannot be written
/// is warned about and the value kept in `buf`.
pub(crate) fn write_json_value(
    value: &serde_json::Value,
    buf: &mut Vec<u8>,
    results: &Path,
) -> Option<Stored> {
    let mark = buf.len();
    let dir = dir_of(results);
    let fallback = |buf: &mut Vec<u8>| {
        let _ = serde_json::to_writer(&mut *buf, value);
    };
    match write_with(
        |w| serde_json::to_writer(w, value).map_err(io::Error::other),
        fallback,
        buf,
        &dir,
        "",
    ) {
        Ok(stored) => stored,
        Err(e) => {
            eprintln!(
                "covalent: warning: cannot write a value file in {}: {e}; the value is kept in the store's row instead",
                dir.display()
            );
            buf.truncate(mark);
            fallback(buf);
            None
        }
    }
}

/// The streaming behind [`write_in`]: `emit` writes the JSON, `fallback` writes what a value
/// that failed to serialize leaves in the row.
fn write_with(
    emit: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    fallback: impl FnOnce(&mut Vec<u8>),
    buf: &mut Vec<u8>,
    dir: &Path,
    prefix: &str,
) -> io::Result<Option<Stored>> {
    let mark = buf.len();
    let mut w = Spill {
        buf,
        mark,
        dir,
        file: None,
        chunk: Vec::new(),
        hasher: None,
        len: 0,
    };
    let streamed = emit(&mut w).and_then(|()| w.flush());
    let Spill {
        buf,
        file,
        hasher,
        len,
        ..
    } = w;
    let Some((file, tmp)) = file else {
        // Short: it is in `buf` (or the failure to serialize it is); nothing was allocated
        // for the file side.
        if streamed.is_err() {
            buf.truncate(mark);
            fallback(buf);
        }
        return Ok(None);
    };
    let done = streamed.and_then(|()| {
        drop(file);
        let stored = Stored {
            h: hasher.unwrap_or_default().finalize().to_hex().to_string(),
            n: len,
        };
        std::fs::rename(&tmp, dir.join(format!("{prefix}{}.json", stored.h)))?;
        Ok(stored)
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done.map(Some)
}

/// [`write`] for a value that may have just been written as a node's output (a dispatch's
/// result is its last node's): the file written then is named again instead of serializing
/// the value a second time. Only this path looks at [`LAST`]; node outputs, one per node, take
/// no lock.
pub(crate) fn write_result(value: &Output, buf: &mut Vec<u8>, results: &Path) -> Option<Stored> {
    if let Some((weak, r, stored)) = &*LAST.lock().unwrap()
        && r == results
        && value.is_same(weak)
        && stored.path_in(&dir_of(results)).exists()
    {
        return Some(stored.clone());
    }
    write(value, buf, results)
}

/// Buffers up to [`INLINE_LIMIT`] bytes after `mark`, then moves to a temporary file.
///
/// The serializer writes a few bytes at a time (a number, a comma): in the file phase they are
/// gathered into [`CHUNK`]-byte chunks before they are hashed and written, as BLAKE3 and the
/// file system are fast on large slices and slow on many small ones.
struct Spill<'a> {
    buf: &'a mut Vec<u8>,
    mark: usize,
    /// Where the file goes.
    dir: &'a Path,
    file: Option<(File, PathBuf)>,
    chunk: Vec<u8>,
    /// Made when the value spills (most values never do, and a hasher is not free to set up).
    hasher: Option<blake3::Hasher>,
    len: u64,
}

/// Bytes gathered before a write to a value file.
const CHUNK: usize = 1 << 20;

impl Spill<'_> {
    fn spill(&mut self) -> io::Result<()> {
        let dir = self.dir;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.part", uuid::Uuid::now_v7().simple()));
        let f = File::create(&tmp)?;
        self.chunk = Vec::with_capacity(CHUNK + INLINE_LIMIT);
        self.chunk.extend_from_slice(&self.buf[self.mark..]);
        self.buf.truncate(self.mark);
        self.file = Some((f, tmp));
        Ok(())
    }

    /// Hashes and writes what is gathered.
    fn drain(&mut self) -> io::Result<()> {
        if let Some((f, _)) = &mut self.file {
            f.write_all(&self.chunk)?;
            self.hasher
                .get_or_insert_with(blake3::Hasher::new)
                .update(&self.chunk);
            self.len += self.chunk.len() as u64;
            self.chunk.clear();
        }
        Ok(())
    }
}

impl Write for Spill<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.file.is_some() {
            self.chunk.extend_from_slice(data);
            if self.chunk.len() >= CHUNK {
                self.drain()?;
            }
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() - self.mark > INLINE_LIMIT {
            self.spill()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()
    }
}

/// The last value written to a file (set when one spills, rare), so the same value stored
/// again by [`write_result`] is not serialized twice: held weakly, so it keeps nothing alive,
/// and compared by identity while it is alive (a live value is never changed).
static LAST: std::sync::Mutex<Option<Last>> = std::sync::Mutex::new(None);

/// [`LAST`]: the value, the results dir of the dispatch it went to, and its reference.
type Last = (std::sync::Weak<dyn crate::value::AnyValue>, PathBuf, Stored);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_stay_in_the_buffer_and_long_ones_go_to_one_file_per_content() {
        let results = tempfile::tempdir().unwrap();
        let dir = dir_of(results.path());
        let mut buf = b"[1,".to_vec();
        assert_eq!(
            write(&Output::new(vec![1u8, 2]), &mut buf, results.path()),
            None
        );
        assert_eq!(buf, b"[1,[1,2]");
        let big: Vec<u32> = (0..100_000).collect();
        let stored = write(&Output::new(big.clone()), &mut buf, results.path()).unwrap();
        assert_eq!(buf, b"[1,[1,2]", "the buffer is left as it was");
        let text = serde_json::to_string(&big).unwrap();
        assert_eq!(stored.n, text.len() as u64);
        assert_eq!(stored.h, blake3::hash(text.as_bytes()).to_hex().to_string());
        let back: Vec<u32> =
            serde_json::from_slice(&std::fs::read(stored.path_in(&dir)).unwrap()).unwrap();
        assert_eq!(back, big);
        // The same value again: the same file, and no temporary left over; the very value
        // just written, as a result, is not serialized again.
        let same = Output::new(big);
        assert_eq!(write(&same, &mut buf, results.path()), Some(stored.clone()));
        assert_eq!(write_result(&same, &mut buf, results.path()), Some(stored));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_directory_that_cannot_be_written_keeps_the_value_in_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, "not a directory").unwrap();
        let big: Vec<u32> = (0..100_000).collect();
        let mut buf = Vec::new();
        assert_eq!(write(&Output::new(big.clone()), &mut buf, &blocked), None);
        assert_eq!(serde_json::from_slice::<Vec<u32>>(&buf).unwrap(), big);
    }
}
