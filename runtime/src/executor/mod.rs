//! The executor API: where and how a node runs, for plugin authors.
//!
//! [`Executor`] is the async interface (Covalent's `AsyncBaseExecutor`): `setup`, `run`,
//! `teardown` and `cancel`, with the base options every executor has ([`BaseOptions`]) and
//! `to_dict`/`from_dict` through serde. [`BlockingExecutor`] is the blocking flavour (Covalent's
//! `BaseExecutor`); the runtime runs it on a blocking thread through [`Blocking`]. A running task
//! talks to the runtime through its [`TaskContext`]. Plugins register with
//! [`register_executor!`](crate::register_executor) and are found by name through the
//! registry; the built-in `local` and `process` executors live here too, with the worker
//! protocol out-of-process executors share ([`worker`]).
//!
//! This module owns the interface and the task/context types; choosing, retrying and timing
//! executors is the dispatcher's job.

mod child;
mod context;
mod error;
pub mod files;
mod local;
mod options;
mod process;
mod registry;
mod select;
pub mod serve;
mod task;
mod traits;
pub mod worker;
mod workers;

/// The attribute for implementing [`Executor`] (its methods are `async fn`s).
pub use async_trait::async_trait;
pub(crate) use context::CtxInner;
pub use context::{DispatchContext, JobHandle, TaskContext};
pub use error::ExecutorError;
pub use local::LocalExecutor;
pub(crate) use options::deserialize_options;
pub use options::{BaseOptions, ToDict, from_dict, write_streams_to_file};
pub use process::ProcessExecutor;
pub use registry::{ExecutorInfo, ExecutorPlugin, registered_executors};
pub(crate) use registry::{find as find_plugin, names as plugin_names};
#[doc(hidden)]
pub use select::marker;
pub use select::{ExecutorRef, ExecutorSel, IntoExecutor};
pub(crate) use task::InProcessFiles;
pub use task::Task;
pub use traits::{Blocking, BlockingExecutor, Executor, Probe};

pub use crate::electron::{TaskError, find_electron};
pub use crate::time::{duration as serde_duration, duration_opt as serde_duration_opt};
pub use crate::value::Output;
/// Covalent's name for the blocking executor interface.
pub use traits::BlockingExecutor as BaseExecutor;
/// Covalent's name for the async executor interface.
pub use traits::Executor as AsyncBaseExecutor;
