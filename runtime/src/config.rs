//! Configuration: `covalent.toml`, typed with serde.
//!
//! Looked up in this order: the file named by `COVALENT_CONFIG`, `covalent.toml` in the current
//! directory, `covalent/covalent.toml` in the user's config directory; with none, built-in
//! defaults. `[executors.<name>]` tables override a plugin's defaults. A bad file is an error
//! naming the file, the line and the key.
//!
//! This module owns reading and merging configuration and caches one executor instance per
//! name; it does not run anything.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::executor::{ExecutorError, ExecutorRef, find_plugin, plugin_names};

/// The `[sdk]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SdkConfig {
    /// Executor for electrons that name none (and whose lattice names none). Default `"local"`.
    pub default_executor: String,
    /// Where the store and dispatch files live (default: `COVALENT_HOME`, else the user's data
    /// dir + `covalent`).
    pub data_dir: Option<PathBuf>,
    /// Where dispatches keep their files (default: `<data_dir>/results`).
    pub results_dir: Option<PathBuf>,
    /// Record every dispatch in the store (default true).
    pub record: bool,
    /// Show a progress bar while waiting on a dispatch in a terminal (default true).
    pub progress: bool,
    /// Cancel the rest of a dispatch at its first failure (default false).
    pub fail_fast: bool,
}

impl Default for SdkConfig {
    fn default() -> Self {
        SdkConfig {
            default_executor: "local".into(),
            data_dir: None,
            results_dir: None,
            record: true,
            progress: true,
            fail_fast: false,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    sdk: SdkConfig,
    executors: BTreeMap<String, toml::Spanned<BTreeMap<toml::Spanned<String>, toml::Value>>>,
    pools: BTreeMap<String, toml::Spanned<u32>>,
}

struct ExecTable {
    table: toml::Table,
    /// The table header's line.
    line: usize,
    /// Each key's line and source text, for messages about one key.
    keys: HashMap<String, (usize, String)>,
}

/// Why the configuration could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is not valid.
    #[error("invalid configuration: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong: `file:line:`, the key, the reason.
        message: String,
    },
}

/// The effective configuration.
pub struct Config {
    /// The `[sdk]` section.
    pub sdk: SdkConfig,
    /// The `[pools]` section: concurrency pools by name, each the most nodes of that pool
    /// (`#[electron(pool = "name")]`) running at once in this process.
    pub pools: BTreeMap<String, u32>,
    executors: BTreeMap<String, ExecTable>,
    source: Option<PathBuf>,
    instances: Mutex<HashMap<String, ExecutorRef>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("sdk", &self.sdk)
            .field("executors", &self.executors.keys().collect::<Vec<_>>())
            .field("source", &self.source)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sdk: SdkConfig::default(),
            pools: BTreeMap::new(),
            executors: BTreeMap::new(),
            source: None,
            instances: Mutex::new(HashMap::new()),
        }
    }
}

impl Config {
    /// Finds and reads the configuration (see the module docs for the search order).
    pub fn load() -> Result<Config, ConfigError> {
        match Self::find() {
            Some(path) => Self::from_file(&path),
            None => Ok(Config::default()),
        }
    }

    /// The file [`Config::load`] would read, if any.
    pub fn find() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("COVALENT_CONFIG") {
            return Some(PathBuf::from(p));
        }
        let local = PathBuf::from("covalent.toml");
        if local.is_file() {
            return Some(local);
        }
        dirs::config_dir()
            .map(|d| d.join("covalent").join("covalent.toml"))
            .filter(|p| p.is_file())
    }

    /// Reads a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_path_buf(),
            message: describe_toml_error(text, origin, &e),
        })?;
        let executors = raw
            .executors
            .into_iter()
            .map(|(name, t)| {
                let line = line_of(text, t.span().start);
                let mut keys = HashMap::new();
                let mut table = toml::Table::new();
                for (k, v) in t.into_inner() {
                    let key_line = line_of(text, k.span().start);
                    let source = text.lines().nth(key_line - 1).unwrap_or("").trim();
                    keys.insert(k.get_ref().clone(), (key_line, source.to_string()));
                    table.insert(k.into_inner(), v);
                }
                (name, ExecTable { table, line, keys })
            })
            .collect();
        let mut pools = BTreeMap::new();
        for (name, size) in raw.pools {
            let line = line_of(text, size.span().start);
            if *size.get_ref() == 0 {
                return Err(ConfigError::Invalid {
                    path: origin.to_path_buf(),
                    message: format!(
                        "{}:{line}: pool `{name}` has size 0: a pool lets at least one node run at a time (remove its electrons' `pool` to run them without a limit)",
                        origin.display()
                    ),
                });
            }
            pools.insert(name, size.into_inner());
        }
        let config = Config {
            sdk: raw.sdk,
            pools,
            executors,
            source: Some(origin.to_path_buf()),
            instances: Mutex::new(HashMap::new()),
        };
        // Check every plugin table now, so a wrong type is reported before anything runs.
        for name in config.executors.keys() {
            if let Some(plugin) = find_plugin(name) {
                plugin
                    .validate(config.executor_options(name))
                    .map_err(|reason| ConfigError::Invalid {
                        path: origin.to_path_buf(),
                        message: config.locate(name, &reason),
                    })?;
            }
        }
        Ok(config)
    }

    /// What in this configuration names something this program does not have: an
    /// `[executors.<name>]` table for an executor it does not register (a typo, or a plugin
    /// only another program links), a `default_executor` it does not know. Dispatches started
    /// with the process-wide configuration print these once, on stderr.
    pub fn warnings(&self) -> Vec<String> {
        let registered = plugin_names();
        let have = registered.join(", ");
        let at = |line: usize| match &self.source {
            Some(src) => format!("{}:{line}: ", src.display()),
            None => String::new(),
        };
        let mut out = Vec::new();
        for (name, t) in &self.executors {
            if find_plugin(name).is_none() {
                out.push(format!(
                    "{}[executors.{name}] configures no executor this program has (it has: {have}); check the name, or ignore this if another program uses that executor",
                    at(t.line)
                ));
            }
        }
        let default = &self.sdk.default_executor;
        if find_plugin(default).is_none() {
            out.push(format!(
                "{}`default_executor = \"{default}\"` names no executor this program has (it has: {have}): electrons without an executor of their own will fail",
                self.source
                    .as_ref()
                    .map(|s| format!("{}: ", s.display()))
                    .unwrap_or_default()
            ));
        }
        out
    }

    /// The process-wide configuration, read once.
    pub fn global() -> Result<Arc<Config>, ConfigError> {
        static GLOBAL: OnceLock<Result<Arc<Config>, ConfigError>> = OnceLock::new();
        GLOBAL.get_or_init(|| Config::load().map(Arc::new)).clone()
    }

    /// The file this configuration came from.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Where the store lives: `COVALENT_HOME`, else `[sdk] data_dir`, else the user's data
    /// dir + `covalent`.
    pub fn data_dir(&self) -> PathBuf {
        std::env::var_os("COVALENT_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| self.sdk.data_dir.clone())
            .unwrap_or_else(|| {
                dirs::data_dir()
                    .unwrap_or_else(std::env::temp_dir)
                    .join("covalent")
            })
    }

    /// The store's database file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir().join("covalent.db")
    }

    /// Where dispatches keep their files.
    pub fn results_dir(&self) -> PathBuf {
        self.sdk
            .results_dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("results"))
    }

    /// A plugin's options: its defaults overridden by `[executors.<name>]`.
    pub fn executor_options(&self, name: &str) -> serde_json::Value {
        let mut opts = find_plugin(name)
            .map(|p| (p.defaults)())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        if let (Some(t), serde_json::Value::Object(map)) = (self.executors.get(name), &mut opts) {
            for (k, v) in &t.table {
                map.insert(
                    k.clone(),
                    serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                );
            }
        }
        opts
    }

    /// Places a message about `[executors.<name>]` in the file: at the key it names
    /// ("key `k`" or "unknown key `k`", the first segment of a dotted key), with that line's
    /// text, else at the table's header.
    fn locate(&self, name: &str, reason: &str) -> String {
        let (Some(t), Some(src)) = (self.executors.get(name), &self.source) else {
            return reason.to_string();
        };
        let key = reason
            .split_once("key `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(k, _)| k.split('.').next().unwrap_or(k));
        match key.and_then(|k| t.keys.get(k)) {
            Some((line, source)) => format!(
                "{}:{line}: `{source}` in [executors.{name}]: {reason}",
                src.display()
            ),
            None => format!("{}:{}: [executors.{name}] {reason}", src.display(), t.line),
        }
    }

    /// The shared instance of a registered executor, created on first use.
    pub fn executor(&self, name: &str) -> Result<ExecutorRef, ExecutorError> {
        if let Some(e) = self.instances.lock().unwrap().get(name) {
            return Ok(e.clone());
        }
        let plugin = find_plugin(name).ok_or_else(|| ExecutorError::Unknown {
            name: name.to_string(),
            registered: plugin_names(),
        })?;
        let e = (plugin.construct)(self.executor_options(name)).map_err(|reason| {
            ExecutorError::Config {
                name: name.to_string(),
                reason: self.locate(name, &reason),
            }
        })?;
        Ok(self
            .instances
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert(e)
            .clone())
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn describe_toml_error(text: &str, origin: &Path, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            let source = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("{}:{line}: `{source}`: {}", origin.display(), e.message())
        }
        None => format!("{}: {}", origin.display(), e.message()),
    }
}
