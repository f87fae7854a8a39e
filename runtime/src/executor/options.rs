//! The options every executor has ([`BaseOptions`]), `to_dict`/`from_dict` through serde, and
//! reading an executor's options from a config table with errors that name the key.
//!
//! This module owns option types and their (de)serialization; it does not construct or cache
//! executors (the registry and the configuration do).

use std::io::Write;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ExecutorError;

/// Options every executor has (Covalent's base executor options).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaseOptions {
    /// File the task's stdout is appended to after each run.
    pub log_stdout: Option<PathBuf>,
    /// File the task's stderr is appended to after each run.
    pub log_stderr: Option<PathBuf>,
    /// Directory for the executor's own files (created when used).
    pub cache_dir: Option<PathBuf>,
    /// Default time limit per attempt for nodes on this executor (an electron's own
    /// `time_limit` wins). In config files: `"30s"`, `"5m"` or a number of seconds.
    #[serde(with = "crate::time::duration_opt")]
    pub time_limit: Option<Duration>,
    /// Default number of retries for nodes on this executor (an electron's own `retries` wins).
    pub retries: Option<u32>,
}

impl BaseOptions {
    /// The cache directory: the configured one, or the user's cache dir + `covalent`.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            dirs::cache_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("covalent")
        })
    }
}

pub(crate) static DEFAULT_BASE: LazyLock<BaseOptions> = LazyLock::new(BaseOptions::default);

/// Appends a task's streams to the files named by `log_stdout` / `log_stderr` (parent
/// directories are created), as Covalent's `write_streams_to_file` does.
pub fn write_streams_to_file(
    stdout: &str,
    stderr: &str,
    base: &BaseOptions,
) -> std::io::Result<()> {
    for (text, path) in [(stdout, &base.log_stdout), (stderr, &base.log_stderr)] {
        if let Some(path) = path {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            f.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

/// Serialization of an executor's configuration (`to_dict`), implemented for every
/// `Serialize` type.
pub trait ToDict {
    /// The executor's attributes as JSON (what the result and the store record).
    fn to_dict(&self) -> serde_json::Value;
}

impl<T: Serialize> ToDict for T {
    fn to_dict(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|e| serde_json::Value::String(e.to_string()))
    }
}

/// Rebuilds an executor from the dictionary [`ToDict::to_dict`] produced (`from_dict`).
/// Missing keys take their defaults; a wrong or unknown key is an error that names it.
pub fn from_dict<E>(dict: serde_json::Value) -> Result<E, ExecutorError>
where
    E: DeserializeOwned + Serialize + Default,
{
    deserialize_options(dict)
        .map_err(|e| ExecutorError::Failed(format!("invalid executor options: {e}")))
}

/// Deserializes executor options, naming the offending key on error (also through
/// `#[serde(flatten)]`, which loses serde's own path) and rejecting keys the type ignores.
pub(crate) fn deserialize_options<E>(opts: serde_json::Value) -> Result<E, String>
where
    E: Default + Serialize + DeserializeOwned,
{
    let given: Vec<(String, serde_json::Value)> = match &opts {
        serde_json::Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        other => return Err(format!("executor options must be a table, found {other}")),
    };
    let e: E = match serde_path_to_error::deserialize(opts) {
        Ok(e) => e,
        Err(err) => {
            let path = err.path().to_string();
            if path != "." {
                return Err(format!("key `{path}`: {}", err.inner()));
            }
            // Find the key: overlay one given key at a time on the defaults.
            let defaults = serde_json::to_value(E::default()).map_err(|e| e.to_string())?;
            for (k, v) in &given {
                let mut probe = defaults.clone();
                if let serde_json::Value::Object(m) = &mut probe {
                    m.insert(k.clone(), v.clone());
                }
                if let Err(e) = serde_json::from_value::<E>(probe) {
                    return Err(format!("key `{k}`: {e}"));
                }
            }
            return Err(err.inner().to_string());
        }
    };
    // Keys the type did not take (serde ignores unknown fields of flattened structs).
    if let serde_json::Value::Object(known) = serde_json::to_value(&e).map_err(|e| e.to_string())?
        && let Some((bad, _)) = given.iter().find(|(k, _)| !known.contains_key(k))
    {
        let mut keys: Vec<&str> = known.keys().map(String::as_str).collect();
        keys.sort();
        return Err(format!(
            "unknown key `{bad}`; expected one of: {}",
            keys.join(", ")
        ));
    }
    Ok(e)
}
