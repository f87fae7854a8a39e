//! The executor plugin registry, collected with `inventory`.
//!
//! A plugin is a type that implements [`Executor`](crate::Executor) or
//! [`BlockingExecutor`](crate::BlockingExecutor) and serde's `Serialize`, `Deserialize` and
//! `Default`; its `Default` serialized is its defaults (Covalent's
//! `_EXECUTOR_PLUGIN_DEFAULTS`), and `[executors.<name>]` in `covalent.toml` overrides them.
//! Register it with [`register_executor!`](crate::register_executor).
//!
//! This module owns lookup by name and construction from options; caching instances is the
//! configuration's job.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::executor::{ExecutorRef, ExecutorSel, IntoExecutor, deserialize_options};

/// One registered executor plugin.
pub struct ExecutorPlugin {
    /// The short name electrons use (`executor = "name"`).
    pub name: &'static str,
    /// The plugin's default options (`_EXECUTOR_PLUGIN_DEFAULTS`).
    pub defaults: fn() -> serde_json::Value,
    /// Builds an instance from merged options.
    pub construct: fn(serde_json::Value) -> Result<ExecutorRef, String>,
}

inventory::collect!(ExecutorPlugin);

impl std::fmt::Debug for ExecutorPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorPlugin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ExecutorPlugin {
    /// The descriptor of plugin type `E` under `name`.
    pub const fn of<E, M>(name: &'static str) -> Self
    where
        E: Default + Serialize + DeserializeOwned + IntoExecutor<M> + 'static,
    {
        ExecutorPlugin {
            name,
            defaults: defaults_of::<E>,
            construct: construct::<E, M>,
        }
    }

    /// Checks options without keeping the instance.
    pub(crate) fn validate(&self, opts: serde_json::Value) -> Result<(), String> {
        (self.construct)(opts).map(|_| ())
    }
}

fn defaults_of<E: Default + Serialize>() -> serde_json::Value {
    serde_json::to_value(E::default()).unwrap_or(serde_json::Value::Null)
}

fn construct<E, M>(opts: serde_json::Value) -> Result<ExecutorRef, String>
where
    E: Default + Serialize + DeserializeOwned + IntoExecutor<M>,
{
    let e: E = deserialize_options(opts)?;
    match e.into_executor() {
        ExecutorSel::Instance(r) => Ok(r),
        ExecutorSel::Named(n) => Err(format!("plugin resolves to another name `{n}`")),
    }
}

/// Finds a plugin by name.
pub fn find(name: &str) -> Option<&'static ExecutorPlugin> {
    inventory::iter::<ExecutorPlugin>
        .into_iter()
        .find(|p| p.name == name)
}

/// The names of every registered plugin, sorted.
pub fn names() -> Vec<String> {
    let mut v: Vec<String> = inventory::iter::<ExecutorPlugin>
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A registered executor: its name and default options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExecutorInfo {
    /// The short name.
    pub name: &'static str,
    /// The default options.
    pub defaults: serde_json::Value,
}

/// Every registered executor plugin with its defaults, sorted by name.
pub fn registered_executors() -> Vec<ExecutorInfo> {
    let mut v: Vec<ExecutorInfo> = inventory::iter::<ExecutorPlugin>
        .into_iter()
        .map(|p| ExecutorInfo {
            name: p.name,
            defaults: (p.defaults)(),
        })
        .collect();
    v.sort_by_key(|i| i.name);
    v
}

/// Registers an executor plugin type under a name.
///
/// ```
/// use covalent::executor::{BaseOptions, ExecutorError, Output, Task, TaskContext};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// #[serde(default)]
/// struct Quiet {
///     #[serde(flatten)]
///     base: BaseOptions,
/// }
///
/// impl covalent::executor::BlockingExecutor for Quiet {
///     fn short_name(&self) -> &str { "quiet" }
///     fn run(&self, task: Task, _ctx: &TaskContext) -> Result<Output, ExecutorError> {
///         Ok(task.call_blocking()?)
///     }
/// }
///
/// covalent::register_executor!("quiet", Quiet);
///
/// assert!(covalent::executor::registered_executors().iter().any(|e| e.name == "quiet"));
/// ```
#[macro_export]
macro_rules! register_executor {
    ($name:literal, $ty:ty) => {
        $crate::__private::inventory::submit! {
            $crate::executor::ExecutorPlugin::of::<$ty, _>($name)
        }
    };
}
