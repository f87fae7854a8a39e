//! Choosing an executor at a call site: a shared instance ([`ExecutorRef`]), a selection by
//! name or instance ([`ExecutorSel`]) and what `executor = ...` accepts ([`IntoExecutor`]).
//!
//! This module owns identity of executor instances; resolving names is the configuration's.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use super::traits::{Blocking, BlockingExecutor, Executor};

static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// A shared executor instance. Cloning shares the instance; every electron that names the
/// same `ExecutorRef` (or the same registered name) runs on the same instance.
///
/// ```
/// use std::sync::LazyLock;
/// use covalent::executor::{ExecutorRef, LocalExecutor};
///
/// static SHARED: LazyLock<ExecutorRef> = LazyLock::new(|| ExecutorRef::new(LocalExecutor::default()));
/// // #[electron(executor = &SHARED)] on several electrons
/// assert_eq!(SHARED.instance_id(), SHARED.clone().instance_id());
/// ```
#[derive(Clone)]
pub struct ExecutorRef {
    pub(crate) exec: Arc<dyn Executor>,
    instance: u64,
}

impl fmt::Debug for ExecutorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.exec.short_name(), self.instance)
    }
}

impl ExecutorRef {
    /// Shares an async executor.
    pub fn new<E: Executor>(e: E) -> Self {
        ExecutorRef {
            exec: Arc::new(e),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
        }
    }
    /// Shares a blocking executor.
    pub fn blocking<E: BlockingExecutor>(e: E) -> Self {
        Self::new(Blocking::new(e))
    }
    /// A process-unique number for this instance.
    pub fn instance_id(&self) -> u64 {
        self.instance
    }
    /// The executor's short name.
    pub fn short_name(&self) -> &str {
        self.exec.short_name()
    }
    /// The executor's `to_dict()`.
    pub fn to_dict(&self) -> serde_json::Value {
        self.exec.to_dict()
    }
    /// The executor.
    pub fn executor(&self) -> &dyn Executor {
        &*self.exec
    }
    /// The executor as its concrete type (for a blocking one, `Blocking<E>`).
    pub fn downcast_ref<E: Executor>(&self) -> Option<&E> {
        let any: &dyn std::any::Any = &*self.exec;
        any.downcast_ref::<E>()
    }
}

/// An executor chosen at a call site: a registered name or an instance.
#[derive(Clone, Debug)]
pub enum ExecutorSel {
    /// A registered plugin name; options come from its defaults and `covalent.toml`.
    Named(Cow<'static, str>),
    /// A given instance.
    Instance(ExecutorRef),
}

impl ExecutorSel {
    pub(crate) fn same(&self, other: &ExecutorSel) -> bool {
        match (self, other) {
            (ExecutorSel::Named(a), ExecutorSel::Named(b)) => a == b,
            (ExecutorSel::Instance(a), ExecutorSel::Instance(b)) => a.instance == b.instance,
            _ => false,
        }
    }
}

#[doc(hidden)]
pub mod marker {
    pub struct Async;
    pub struct Blocking;
    pub struct Other;
}

/// What the `executor = ...` option accepts: a registered name (`"local"`), an
/// [`ExecutorRef`] (shared instance), or an executor value (a new instance per call).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an executor",
    label = "expected an executor name, an `ExecutorRef`, or a value implementing `Executor` or `BlockingExecutor`"
)]
pub trait IntoExecutor<M> {
    /// The selection.
    fn into_executor(self) -> ExecutorSel;
}

impl<E: Executor> IntoExecutor<marker::Async> for E {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance(ExecutorRef::new(self))
    }
}
impl<E: BlockingExecutor> IntoExecutor<marker::Blocking> for E {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance(ExecutorRef::blocking(self))
    }
}
impl IntoExecutor<marker::Other> for &'static str {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Named(Cow::Borrowed(self))
    }
}
impl IntoExecutor<marker::Other> for String {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Named(Cow::Owned(self))
    }
}
impl IntoExecutor<marker::Other> for ExecutorRef {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance(self)
    }
}
impl IntoExecutor<marker::Other> for &ExecutorRef {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance(self.clone())
    }
}
impl IntoExecutor<marker::Other> for &LazyLock<ExecutorRef> {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance((**self).clone())
    }
}
impl IntoExecutor<marker::Other> for ExecutorSel {
    fn into_executor(self) -> ExecutorSel {
        self
    }
}
