//! What the macros' generated code calls. Not a public API: names and signatures change
//! without notice. Generated code reaches every dependency through this module, so user crates
//! need only `covalent` in their `Cargo.toml`.

use std::fmt::Display;
use std::future::Future;

pub use crate::durable::{AnyLattice, LatticeEntry, Reader, ViaDeserialize, ViaNothing};
pub use crate::electron::{
    Args, Body, ElectronDef, ElectronEntry, Hook, SubGraph, TaskError, TaskFuture,
};
pub use crate::executor::ExecutorSel;
pub use crate::graph::Builder;
pub use crate::value::{Output, Value};
pub use inventory;
pub use serde_json;

use crate::executor::IntoExecutor;
use crate::graph::{IntoNode, Node, Op, with_builder};
use crate::lattice::Lattice;

/// Static description of a `#[lattice]` function.
#[derive(Debug)]
pub struct LatticeDef {
    /// Display name.
    pub name: &'static str,
    /// `module::path::function`.
    pub path: &'static str,
    /// `fail_fast` option.
    pub fail_fast: bool,
}

/// Adds an electron node (the body of an electron's wrapper function). `args` connects each
/// argument with [`arg`].
pub fn electron_node<T>(
    def: &'static ElectronDef,
    executor: Option<ExecutorSel>,
    args: impl FnOnce(&mut Builder, u32),
) -> Node<T> {
    with_builder(def.name, |b| {
        let exec = match executor {
            Some(sel) => b.executor_index(sel),
            None => crate::graph::NO_EXECUTOR,
        };
        let id = b.push(Op::Electron(def), exec);
        args(b, id);
        Node::new(id, b.serial())
    })
}

/// Connects argument `slot` of node `node`.
pub fn arg<T, A: IntoNode<T>>(b: &mut Builder, node: u32, slot: u32, a: A) {
    let src = a.into_node(b);
    let serial = b.serial();
    b.edge(src, node, slot, serial);
}

/// Evaluates an `executor = ...` option.
pub fn executor<M, X: IntoExecutor<M>>(x: X) -> ExecutorSel {
    x.into_executor()
}

/// Compile-time check that `T` can travel between electrons (spanned on the user's type).
pub fn assert_value<T: Value>() {}

/// Compile-time check that a lattice parameter can be recorded.
pub fn assert_input<T: crate::value::Input>() {}

/// Wraps a plain electron return value.
pub fn ok<T: Value>(v: T) -> Result<Output, TaskError> {
    Ok(Output::new(v))
}

/// `Result`-returning electrons: `Ok` is the node's value, `Err` fails the node.
pub trait ElectronResult {
    /// The node's value type.
    type Ok: Value;
    /// Converts.
    fn into_output(self) -> Result<Output, TaskError>;
}

impl<T: Value, E: Display> ElectronResult for Result<T, E> {
    type Ok = T;
    fn into_output(self) -> Result<Output, TaskError> {
        match self {
            Ok(v) => Ok(Output::new(v)),
            Err(e) => Err(TaskError::Failed(format!("{e:#}"))),
        }
    }
}

/// Wraps a `Result`-returning electron's value.
pub fn from_result<R: ElectronResult>(r: R) -> Result<Output, TaskError> {
    r.into_output()
}

/// Boxes an async electron's future.
pub fn boxed<F>(f: F) -> TaskFuture
where
    F: Future<Output = Result<Output, TaskError>> + Send + 'static,
{
    Box::pin(f)
}

/// A hook's return value: `()` or `Result<(), E>`.
pub trait HookResult {
    /// Converts.
    fn into_hook(self) -> Result<(), String>;
}
impl HookResult for () {
    fn into_hook(self) -> Result<(), String> {
        Ok(())
    }
}
impl<E: Display> HookResult for Result<(), E> {
    fn into_hook(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:#}"))
    }
}
/// Converts a hook's return value.
pub fn hook_result<R: HookResult>(r: R) -> Result<(), String> {
    r.into_hook()
}

/// Records a lattice input: its JSON, or why it has no faithful JSON form.
pub fn input<T: crate::value::Input>(
    name: &str,
    v: &T,
) -> (String, Result<serde_json::Value, String>) {
    let json = crate::faithful::check(v)
        .map_err(|e| e.to_string())
        .and_then(|()| serde_json::to_value(v).map_err(|e| e.to_string()));
    (name.to_string(), json)
}

/// Builds a lattice: runs `body` with a fresh graph builder installed.
pub fn build_lattice<T: Value>(
    def: &'static LatticeDef,
    executor: Option<ExecutorSel>,
    inputs: Vec<(String, Result<serde_json::Value, String>)>,
    body: impl FnOnce() -> u32,
) -> Lattice<T> {
    let mut g = crate::graph::build(body);
    g.name = def.name.to_string();
    g.path = def.path;
    g.default_executor = executor;
    for (name, json) in inputs {
        match json {
            Ok(v) => g.inputs_json.push((name, v)),
            Err(e) => g.input_errors.push((name, e)),
        }
    }
    g.fail_fast = def.fail_fast;
    Lattice::from_graph(g)
}

/// Converts a lattice body's tail into the output node.
pub fn lattice_output<T, O: IntoNode<T>>(o: O) -> u32 {
    with_builder("a lattice's result", |b| o.into_node(b))
}

/// The graph of a sublattice, built at run time.
pub fn sublattice<T>(l: Lattice<T>) -> SubGraph {
    l.into_graph().into_sub()
}

/// `#[covalent::main]`: runs the program's async main on a multi-threaded runtime.
pub fn main<F: Future>(f: F) -> F::Output {
    // Worker, dispatcher and maintenance modes, where the constructor did not already handle
    // them.
    crate::entry::enter_modes();
    crate::runtime::block_on_main(f)
}

/// `#[covalent::test]`: runs an async test on a multi-threaded runtime.
pub fn test<F: Future>(f: F) -> F::Output {
    crate::runtime::block_on_main(f)
}
