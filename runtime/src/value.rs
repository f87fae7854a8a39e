//! Values that flow between nodes: the [`Value`] bound every electron input and output meets,
//! and [`Output`], the shared, type-erased form a node's result takes inside the dispatcher.
//!
//! This module owns type erasure and (lazy) JSON conversion; it must not know about graphs or
//! scheduling. Values stay native in process and are serialized only when asked for (a result
//! report, a remote executor, the store).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a type needs to travel between electrons: it can be cloned for several consumers, sent
/// across threads, and serialized for reports and for executors in other processes.
///
/// Implemented automatically for every type that is `Serialize + DeserializeOwned + Clone + Send +
/// Sync + 'static`; derive `Serialize`, `Deserialize` and `Clone` on your own types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel between electrons: it must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`",
    label = "this type is not a covalent value",
    note = "derive `serde::Serialize`, `serde::Deserialize` and `Clone` for it, or pass an owned, serializable type instead"
)]
pub trait Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

#[diagnostic::do_not_recommend]
impl<T> Value for T where T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

/// Object-safe view of a [`Value`]: downcasting and JSON on demand.
pub(crate) trait AnyValue: Any + Send + Sync {
    fn check(&self) -> Result<(), String>;
    fn to_json(&self) -> Result<serde_json::Value, String>;
    fn to_json_string(&self) -> Result<String, String>;
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), String>;
    fn write_json_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;
    fn type_name(&self) -> &'static str;
}

impl<T: Value> AnyValue for T {
    fn check(&self) -> Result<(), String> {
        crate::faithful::check(self).map_err(|e| e.to_string())
    }
    fn to_json(&self) -> Result<serde_json::Value, String> {
        self.check()?;
        serde_json::to_value(self).map_err(|e| e.to_string())
    }
    fn to_json_string(&self) -> Result<String, String> {
        self.check()?;
        serde_json::to_string(self).map_err(|e| e.to_string())
    }
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), String> {
        serde_json::to_writer(out, self).map_err(|e| e.to_string())
    }
    fn write_json_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        // The serializer writes a token at a time: gathered here, on the typed side, `out` is
        // called once per KiB rather than two or three times per number of a large vector.
        let mut w = Gather {
            out,
            buf: [0; 1024],
            len: 0,
        };
        serde_json::to_writer(&mut w, self).map_err(std::io::Error::other)?;
        std::io::Write::flush(&mut w)
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

/// A 1 KiB buffer on the stack in front of a `dyn Write` (small: it is zeroed for every value).
struct Gather<'a> {
    out: &'a mut dyn std::io::Write,
    buf: [u8; 1024],
    len: usize,
}

impl std::io::Write for Gather<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.len + data.len() > self.buf.len() {
            self.flush()?;
            if data.len() > self.buf.len() {
                self.out.write_all(data)?;
                return Ok(data.len());
            }
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.len > 0 {
            self.out.write_all(&self.buf[..self.len])?;
            self.len = 0;
        }
        Ok(())
    }
}

/// A value held as JSON text in a file: a large output a worker in another process wrote,
/// moved among its dispatch's value files. Read when somebody asks for it (streamed, never
/// held in memory whole by the dispatcher). Unless the store names the file (a recorded
/// dispatch's node output or result, see `store/values.rs`), it goes when the value does.
pub(crate) struct JsonFile {
    path: std::path::PathBuf,
    /// BLAKE3 of the text, hex.
    digest: String,
    /// The text's length in bytes.
    len: u64,
    kept: std::sync::atomic::AtomicBool,
}

impl JsonFile {
    fn open(&self) -> std::io::Result<std::io::BufReader<std::fs::File>> {
        std::fs::File::open(&self.path).map(|f| std::io::BufReader::with_capacity(1 << 20, f))
    }

    fn read_error(&self, e: impl fmt::Display) -> String {
        format!(
            "cannot read the value file {} ({} bytes): {e}",
            self.path.display(),
            self.len
        )
    }
}

impl Drop for JsonFile {
    fn drop(&mut self) {
        if self.kept.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        // Its dir, and the dispatch's results dir, when that leaves them empty (an
        // unrecorded dispatch leaves nothing behind).
        if let Some(dir) = self.path.parent()
            && std::fs::remove_dir(dir).is_ok()
            && let Some(results) = dir.parent()
        {
            let _ = std::fs::remove_dir(results);
        }
    }
}

impl AnyValue for JsonFile {
    fn check(&self) -> Result<(), String> {
        // It was checked by the worker that wrote it, and its digest when it arrived.
        Ok(())
    }
    fn to_json(&self) -> Result<serde_json::Value, String> {
        let r = self.open().map_err(|e| self.read_error(e))?;
        serde_json::from_reader(r).map_err(|e| self.read_error(e))
    }
    fn to_json_string(&self) -> Result<String, String> {
        std::fs::read_to_string(&self.path).map_err(|e| self.read_error(e))
    }
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let mut r = self.open().map_err(|e| self.read_error(e))?;
        std::io::Read::read_to_end(&mut r, out)
            .map(|_| ())
            .map_err(|e| self.read_error(e))
    }
    fn write_json_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut f = std::fs::File::open(&self.path)?;
        std::io::copy(&mut f, out).map(|_| ())
    }
    fn type_name(&self) -> &'static str {
        "JSON in a value file"
    }
}

/// The output of a node: a shared, type-erased value that is cloned for each consumer and
/// serialized only when somebody asks for JSON.
#[derive(Clone)]
pub struct Output(Arc<dyn AnyValue>);

impl Output {
    /// Wraps a value.
    pub fn new<T: Value>(value: T) -> Self {
        Output(Arc::new(value))
    }

    /// The value as `T`, if it is one.
    pub fn downcast_ref<T: Value>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref::<T>()
    }

    /// A clone of the value as `T`: taken natively when the type matches, otherwise converted
    /// through JSON (a value that came back from another process).
    pub fn get<T: Value>(&self) -> Result<T, String> {
        if let Some(v) = self.downcast_ref::<T>() {
            return Ok(v.clone());
        }
        if let Some(json) = self.downcast_ref::<serde_json::Value>() {
            return serde_json::from_value(json.clone()).map_err(|e| {
                format!(
                    "cannot read a `{}` from the JSON value {json}: {e}",
                    std::any::type_name::<T>()
                )
            });
        }
        if let Some(file) = self.downcast_file() {
            let r = file.open().map_err(|e| file.read_error(e))?;
            return serde_json::from_reader(r).map_err(|e| {
                format!(
                    "cannot read a `{}` from the JSON in {}: {e}",
                    std::any::type_name::<T>(),
                    file.path.display()
                )
            });
        }
        Err(format!(
            "expected a value of type `{}`, found `{}`",
            std::any::type_name::<T>(),
            self.0.type_name()
        ))
    }

    /// A value whose JSON text is the file at `path` (`len` bytes, BLAKE3 `digest`): the
    /// file is the value's from now on (removed with it unless the store names it).
    pub(crate) fn from_json_file(path: std::path::PathBuf, digest: String, len: u64) -> Self {
        Output(Arc::new(JsonFile {
            path,
            digest,
            len,
            kept: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    fn downcast_file(&self) -> Option<&JsonFile> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref::<JsonFile>()
    }

    /// For a value held in a file: the file, its digest and length.
    pub(crate) fn json_file(&self) -> Option<(&std::path::Path, &str, u64)> {
        self.downcast_file()
            .map(|f| (f.path.as_path(), f.digest.as_str(), f.len))
    }

    /// Leaves the file of a value held in one in place when the value goes (the store names
    /// it).
    pub(crate) fn keep_file(&self) {
        if let Some(f) = self.downcast_file() {
            f.kept.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether the value reads back from JSON as it is: `Err` says which part would not (a NaN
    /// or infinity, an integer wider than 64 bits, a map key that is not a string, number or
    /// unit variant) and where in the value it is.
    pub fn check(&self) -> Result<(), String> {
        self.0.check()
    }

    /// The value as JSON; `Err` when it would not read back as it is (see [`Output::check`]).
    pub fn to_json(&self) -> Result<serde_json::Value, String> {
        self.0.to_json()
    }

    /// The value as JSON text (a JSON string holding the error if it cannot be serialized).
    pub fn to_json_string(&self) -> String {
        self.0
            .to_json_string()
            .unwrap_or_else(|e| serde_json::Value::String(e).to_string())
    }

    /// Appends the value's JSON to `out` (a JSON string holding the error if it cannot be
    /// serialized).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mark = out.len();
        if let Err(e) = self.0.write_json(out) {
            out.truncate(mark);
            out.extend_from_slice(serde_json::Value::String(e).to_string().as_bytes());
        }
    }

    /// A weak handle on the value (see [`Output::is_same`]).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<dyn AnyValue> {
        Arc::downgrade(&self.0)
    }

    /// Whether this is the very value `weak` points at, still alive.
    pub(crate) fn is_same(&self, weak: &std::sync::Weak<dyn AnyValue>) -> bool {
        weak.upgrade().is_some_and(|v| Arc::ptr_eq(&v, &self.0))
    }

    /// Streams the value's JSON to `out`.
    pub(crate) fn write_json_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.0.write_json_to(out)
    }

    /// The Rust type name of the value.
    pub fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_json() {
            Ok(v) => write!(f, "{v}"),
            Err(e) => write!(f, "<{}: {e}>", self.type_name()),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a lattice parameter needs: its value is recorded with the dispatch.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a lattice input: lattice inputs are recorded with the dispatch, so they must implement `Serialize`",
    label = "this type is not `Serialize`",
    note = "derive `serde::Serialize` for it"
)]
pub trait Input: Serialize {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + ?Sized> Input for T {}
