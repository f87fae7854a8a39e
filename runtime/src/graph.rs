//! The transport graph: typed [`Node`] handles, the [`IntoNode`] conversions that turn call
//! arguments into edges, and the dense arena a lattice body builds.
//!
//! Building happens on one thread through a thread-local builder that `#[lattice]` installs
//! around the body; every electron call pushes one node. The finished [`Graph`] is a flat arena
//! (ids are indices, edges in compressed rows), ready for the dispatcher. This module must not
//! run anything.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::electron::{Args, ElectronDef, SubGraph, TaskError};
use crate::executor::ExecutorSel;
use crate::value::{Output, Value};

/// Slot number of a data-less ordering edge.
pub(crate) const WAIT_SLOT: u32 = u32::MAX;
/// "No executor chosen at the call site."
pub(crate) const NO_EXECUTOR: u32 = u32::MAX;

/// A typed handle to the future output of a node inside a lattice body.
///
/// Electron calls return `Node<T>`; pass it to other electrons wherever a `T` is expected.
/// Nothing runs while the lattice is built, so a `Node` has no value to look at: branch on
/// values inside an electron, or build the graph at run time with a sublattice.
pub struct Node<T> {
    at: At,
    _t: PhantomData<fn() -> T>,
}

/// Where a node is: its id and the graph it belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
struct At {
    id: u32,
    graph: u32,
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Node<T> {}

impl<T> fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node<{}>({})", std::any::type_name::<T>(), self.at.id)
    }
}

impl<T> Node<T> {
    pub(crate) fn new(id: u32, graph: u32) -> Self {
        Node {
            at: At { id, graph },
            _t: PhantomData,
        }
    }

    /// The node id (its position in call order).
    pub fn id(&self) -> usize {
        self.at.id as usize
    }

    /// Makes this node wait for `parents` to finish without taking their outputs
    /// (Covalent's `wait_for`). Returns the node for chaining.
    pub fn wait_for(self, parents: impl Waitable) -> Self {
        with_builder("Node::wait_for", |b| {
            b.check(self.at.graph);
            let mut ids = Vec::new();
            parents.node_ids(&mut ids);
            for p in ids {
                b.edge(p.id, self.at.id, WAIT_SLOT, p.graph);
            }
        });
        self
    }

    fn any(&self) -> AnyNode {
        AnyNode {
            id: self.at.id,
            graph: self.at.graph,
        }
    }
}

/// An untyped node reference, for ordering edges.
#[derive(Clone, Copy, Debug)]
pub struct AnyNode {
    id: u32,
    graph: u32,
}

impl<T> From<Node<T>> for AnyNode {
    fn from(n: Node<T>) -> Self {
        n.any()
    }
}

/// Data-less ordering: make `child` run only after every node in `parents` has finished
/// (Covalent's `ct.wait`). Returns `child`.
///
/// ```
/// use covalent::prelude::*;
///
/// #[electron]
/// fn setup() {}
/// #[electron]
/// fn work(x: i64) -> i64 { x * 2 }
///
/// #[lattice]
/// fn flow(x: i64) -> i64 {
///     let s = setup();
///     wait(work(x), s)
/// }
/// # let r = covalent::dispatch_sync(flow(21)).unwrap();
/// # assert_eq!(r.value(), Some(&42));
/// ```
pub fn wait<T>(child: Node<T>, parents: impl Waitable) -> Node<T> {
    child.wait_for(parents)
}

/// Things a node can wait for: a node, a reference to one, an iterator-like collection of nodes
/// or a tuple of them.
pub trait Waitable {
    #[doc(hidden)]
    fn node_ids(&self, out: &mut Vec<AnyNode>);
}

impl<T> Waitable for Node<T> {
    fn node_ids(&self, out: &mut Vec<AnyNode>) {
        out.push(self.any());
    }
}
impl<W: Waitable + ?Sized> Waitable for &W {
    fn node_ids(&self, out: &mut Vec<AnyNode>) {
        (**self).node_ids(out)
    }
}
impl Waitable for AnyNode {
    fn node_ids(&self, out: &mut Vec<AnyNode>) {
        out.push(*self);
    }
}
impl<W: Waitable> Waitable for [W] {
    fn node_ids(&self, out: &mut Vec<AnyNode>) {
        self.iter().for_each(|w| w.node_ids(out))
    }
}
impl<W: Waitable, const N: usize> Waitable for [W; N] {
    fn node_ids(&self, out: &mut Vec<AnyNode>) {
        self.iter().for_each(|w| w.node_ids(out))
    }
}
impl<W: Waitable> Waitable for Vec<W> {
    fn node_ids(&self, out: &mut Vec<AnyNode>) {
        self.iter().for_each(|w| w.node_ids(out))
    }
}
macro_rules! waitable_tuple {
    ($($n:ident $i:tt),+) => {
        impl<$($n: Waitable),+> Waitable for ($($n,)+) {
            fn node_ids(&self, out: &mut Vec<AnyNode>) {
                $( self.$i.node_ids(out); )+
            }
        }
    };
}
waitable_tuple!(A 0);
waitable_tuple!(A 0, B 1);
waitable_tuple!(A 0, B 1, C 2);
waitable_tuple!(A 0, B 1, C 2, D 3);
waitable_tuple!(A 0, B 1, C 2, D 3, E 4);
waitable_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);

/// Conversion of an electron argument (or a lattice's tail) into a node of type `T`: a plain
/// `T` becomes a parameter node, a `Node<T>` is used as is, a `Vec` of nodes is collected into
/// a `Vec<T>`, a tuple with nodes becomes a tuple.
#[diagnostic::on_unimplemented(
    message = "expected `{T}` or a `Node<{T}>`, found `{Self}`",
    label = "expected `{T}` here",
    note = "a value of type `{T}` is expected: pass one, or a `Node<{T}>` returned by an electron; for `Vec` and tuple types, a `Vec` or tuple of such nodes also works"
)]
pub trait IntoNode<T> {
    #[doc(hidden)]
    fn into_node(self, b: &mut Builder) -> u32;
}

impl<T: Value> IntoNode<T> for T {
    fn into_node(self, b: &mut Builder) -> u32 {
        b.param(Output::new(self))
    }
}

/// A string literal where a `String` is expected: `greet("world")`.
impl IntoNode<String> for &str {
    fn into_node(self, b: &mut Builder) -> u32 {
        b.param(Output::new(self.to_string()))
    }
}

impl<T> IntoNode<T> for Node<T> {
    fn into_node(self, b: &mut Builder) -> u32 {
        b.check(self.at.graph);
        self.at.id
    }
}

impl<T> IntoNode<T> for &Node<T> {
    fn into_node(self, b: &mut Builder) -> u32 {
        b.check(self.at.graph);
        self.at.id
    }
}

fn collect_ids<T, I: IntoIterator<Item = u32>>(b: &mut Builder, items: I) -> u32
where
    T: Value,
{
    let id = b.push(Op::Internal(Collect::<T>::OP), NO_EXECUTOR);
    for (slot, src) in items.into_iter().enumerate() {
        b.edge(src, id, slot as u32, b.serial);
    }
    id
}

impl<T: Value> IntoNode<Vec<T>> for Vec<Node<T>> {
    fn into_node(self, b: &mut Builder) -> u32 {
        self.iter().for_each(|n| b.check(n.at.graph));
        collect_ids::<T, _>(b, self.iter().map(|n| n.at.id))
    }
}

impl<T: Value> IntoNode<Vec<T>> for &[Node<T>] {
    fn into_node(self, b: &mut Builder) -> u32 {
        self.iter().for_each(|n| b.check(n.at.graph));
        collect_ids::<T, _>(b, self.iter().map(|n| n.at.id))
    }
}

impl<T: Value> IntoNode<Vec<T>> for &Vec<Node<T>> {
    fn into_node(self, b: &mut Builder) -> u32 {
        self.as_slice().into_node(b)
    }
}

impl<T: Value, const N: usize> IntoNode<Vec<T>> for [Node<T>; N] {
    fn into_node(self, b: &mut Builder) -> u32 {
        self.as_slice().into_node(b)
    }
}

impl<T: Value> IntoNode<Vec<Vec<T>>> for Vec<Vec<Node<T>>> {
    fn into_node(self, b: &mut Builder) -> u32 {
        let inner: Vec<u32> = self.into_iter().map(|v| v.into_node(b)).collect();
        collect_ids::<Vec<T>, _>(b, inner)
    }
}

struct Collect<T>(PhantomData<T>);
impl<T: Value> Collect<T> {
    const OP: &'static InternalOp = &InternalOp {
        name: ":electron_list:",
        tag: 0,
        internal: true,
        run: collect::<T>,
    };
}
fn collect<T: Value>(args: &mut Args) -> Result<Output, TaskError> {
    let mut out = Vec::with_capacity(args.len());
    for i in 0..args.len() {
        out.push(args.take::<T>(i)?);
    }
    Ok(Output::new(out))
}

/// A tuple element: a plain value or a node.
#[doc(hidden)]
pub trait TupleElem<T> {
    fn elem(self, b: &mut Builder) -> u32;
}
impl<T: Value> TupleElem<T> for T {
    fn elem(self, b: &mut Builder) -> u32 {
        b.param(Output::new(self))
    }
}

/// Element `I` of a tuple type.
#[doc(hidden)]
pub trait TupleField<const I: usize>: Value {
    type Out: Value;
    fn field(self) -> Self::Out;
}

macro_rules! tuple_field {
    ($tup:ty, [$($g:ident),+], $i:tt, $out:ident) => {
        impl<$($g: Value),+> TupleField<$i> for $tup {
            type Out = $out;
            fn field(self) -> $out {
                self.$i
            }
        }
    };
}
tuple_field!((A, B), [A, B], 0, A);
tuple_field!((A, B), [A, B], 1, B);
tuple_field!((A, B, C), [A, B, C], 0, A);
tuple_field!((A, B, C), [A, B, C], 1, B);
tuple_field!((A, B, C), [A, B, C], 2, C);
tuple_field!((A, B, C, D), [A, B, C, D], 0, A);
tuple_field!((A, B, C, D), [A, B, C, D], 1, B);
tuple_field!((A, B, C, D), [A, B, C, D], 2, C);
tuple_field!((A, B, C, D), [A, B, C, D], 3, D);
tuple_field!((A, B, C, D, E), [A, B, C, D, E], 0, A);
tuple_field!((A, B, C, D, E), [A, B, C, D, E], 1, B);
tuple_field!((A, B, C, D, E), [A, B, C, D, E], 2, C);
tuple_field!((A, B, C, D, E), [A, B, C, D, E], 3, D);
tuple_field!((A, B, C, D, E), [A, B, C, D, E], 4, E);
tuple_field!((A, B, C, D, E, F), [A, B, C, D, E, F], 0, A);
tuple_field!((A, B, C, D, E, F), [A, B, C, D, E, F], 1, B);
tuple_field!((A, B, C, D, E, F), [A, B, C, D, E, F], 2, C);
tuple_field!((A, B, C, D, E, F), [A, B, C, D, E, F], 3, D);
tuple_field!((A, B, C, D, E, F), [A, B, C, D, E, F], 4, E);
tuple_field!((A, B, C, D, E, F), [A, B, C, D, E, F], 5, F);

struct TupleGet<Tup, const I: usize>(PhantomData<Tup>);
impl<Tup: TupleField<I>, const I: usize> TupleGet<Tup, I> {
    const OP: &'static InternalOp = &InternalOp {
        name: ":getitem:",
        tag: I as u32,
        internal: true,
        run: |args: &mut Args| Ok(Output::new(args.take::<Tup>(0)?.field())),
    };
}

impl<Tup: Value> Node<Tup> {
    /// A node holding element `I` of this tuple-valued node (`n.field::<0>()`).
    pub fn field<const I: usize>(self) -> Node<<Tup as TupleField<I>>::Out>
    where
        Tup: TupleField<I>,
    {
        with_builder("Node::field", |b| {
            b.check(self.at.graph);
            let id = b.push(Op::Internal(TupleGet::<Tup, I>::OP), NO_EXECUTOR);
            b.edge(self.at.id, id, 0, b.serial);
            Node::new(id, b.serial)
        })
    }
}

struct TupleOp<Tup>(PhantomData<Tup>);

macro_rules! tuple_impls {
    ($($n:ident $i:tt),+) => {
        impl<$($n: Value),+> TupleOp<($($n,)+)> {
            const OP: &'static InternalOp = &InternalOp {
                name: ":electron_tuple:",
                tag: 0,
                internal: true,
                run: |args: &mut Args| Ok(Output::new(($(args.take::<$n>($i)?,)+))),
            };
        }
        impl<$($n: Value),+> Node<($($n,)+)> {
            /// Splits a tuple-valued node into one node per element (`let (a, b) = n.split()`).
            pub fn split(self) -> ($(Node<$n>,)+) {
                ($( self.field::<$i>(), )+)
            }
        }
    };
}

tuple_impls!(A 0, B 1);
tuple_impls!(A 0, B 1, C 2);
tuple_impls!(A 0, B 1, C 2, D 3);
tuple_impls!(A 0, B 1, C 2, D 3, E 4);
tuple_impls!(A 0, B 1, C 2, D 3, E 4, F 5);

// Tuples that hold at least one node convert into a tuple node. Every mix of nodes and plain
// values is listed (up to four elements); a tuple of plain values is itself a value.
macro_rules! tuple_into_node {
    ($(($n:ident $i:tt $e:ty)),+) => {
        impl<$($n: Value),+> IntoNode<($($n,)+)> for ($($e,)+) {
            fn into_node(self, b: &mut Builder) -> u32 {
                let ids = [$( TupleElem::<$n>::elem(self.$i, b) ),+];
                let id = b.push(Op::Internal(TupleOp::<($($n,)+)>::OP), NO_EXECUTOR);
                for (slot, src) in ids.into_iter().enumerate() {
                    b.edge(src, id, slot as u32, b.serial);
                }
                id
            }
        }
    };
}
impl<T> TupleElem<T> for Node<T> {
    fn elem(self, b: &mut Builder) -> u32 {
        b.check(self.at.graph);
        self.at.id
    }
}
tuple_into_node!((A 0 Node<A>), (B 1 Node<B>));
tuple_into_node!((A 0 Node<A>), (B 1 B));
tuple_into_node!((A 0 A), (B 1 Node<B>));
tuple_into_node!((A 0 Node<A>), (B 1 Node<B>), (C 2 Node<C>));
tuple_into_node!((A 0 Node<A>), (B 1 Node<B>), (C 2 C));
tuple_into_node!((A 0 Node<A>), (B 1 B), (C 2 Node<C>));
tuple_into_node!((A 0 A), (B 1 Node<B>), (C 2 Node<C>));
tuple_into_node!((A 0 Node<A>), (B 1 B), (C 2 C));
tuple_into_node!((A 0 A), (B 1 Node<B>), (C 2 C));
tuple_into_node!((A 0 A), (B 1 B), (C 2 Node<C>));
tuple_into_node!((A 0 Node<A>), (B 1 Node<B>), (C 2 Node<C>), (D 3 Node<D>));
tuple_into_node!((A 0 Node<A>), (B 1 Node<B>), (C 2 Node<C>), (D 3 D));
tuple_into_node!((A 0 Node<A>), (B 1 Node<B>), (C 2 C), (D 3 Node<D>));
tuple_into_node!((A 0 Node<A>), (B 1 B), (C 2 Node<C>), (D 3 Node<D>));
tuple_into_node!((A 0 A), (B 1 Node<B>), (C 2 Node<C>), (D 3 Node<D>));
tuple_into_node!((A 0 Node<A>), (B 1 Node<B>), (C 2 C), (D 3 D));
tuple_into_node!((A 0 Node<A>), (B 1 B), (C 2 Node<C>), (D 3 D));
tuple_into_node!((A 0 Node<A>), (B 1 B), (C 2 C), (D 3 Node<D>));
tuple_into_node!((A 0 A), (B 1 Node<B>), (C 2 Node<C>), (D 3 D));
tuple_into_node!((A 0 A), (B 1 Node<B>), (C 2 C), (D 3 Node<D>));
tuple_into_node!((A 0 A), (B 1 B), (C 2 Node<C>), (D 3 Node<D>));
tuple_into_node!((A 0 Node<A>), (B 1 B), (C 2 C), (D 3 D));
tuple_into_node!((A 0 A), (B 1 Node<B>), (C 2 C), (D 3 D));
tuple_into_node!((A 0 A), (B 1 B), (C 2 Node<C>), (D 3 D));
tuple_into_node!((A 0 A), (B 1 B), (C 2 C), (D 3 Node<D>));
tuple_into_node!((A 0 Node<A>), (B 1 Node<B>), (C 2 Node<C>), (D 3 Node<D>), (E 4 Node<E>));
tuple_into_node!((A 0 Node<A>), (B 1 Node<B>), (C 2 Node<C>), (D 3 Node<D>), (E 4 Node<E>), (F 5 Node<F>));

// ---- indexing -------------------------------------------------------------------------------

struct VecGet<T>(PhantomData<T>);
impl<T: Value> VecGet<T> {
    const OP: &'static InternalOp = &InternalOp {
        name: ":getitem:",
        tag: 0,
        internal: true,
        run: |args: &mut Args| {
            let idx = args.take::<usize>(1)?;
            let v = args
                .output(0)
                .and_then(|o| o.downcast_ref::<Vec<T>>().map(|v| v.get(idx).cloned()));
            match v {
                Some(Some(x)) => Ok(Output::new(x)),
                Some(None) => {
                    let len = args.take::<Vec<T>>(0)?.len();
                    Err(TaskError::Failed(format!(
                        "index {idx} is out of bounds for a list of length {len}"
                    )))
                }
                None => {
                    let v = args.take::<Vec<T>>(0)?;
                    v.get(idx).cloned().map(Output::new).ok_or_else(|| {
                        TaskError::Failed(format!(
                            "index {idx} is out of bounds for a list of length {}",
                            v.len()
                        ))
                    })
                }
            }
        },
    };
}

impl<T: Value> Node<Vec<T>> {
    /// A node holding element `index` of this list (`index` may itself be a node).
    /// An index past the end fails that node.
    pub fn get(self, index: impl IntoNode<usize>) -> Node<T> {
        with_builder("Node::get", |b| {
            b.check(self.at.graph);
            let id = b.push(Op::Internal(VecGet::<T>::OP), NO_EXECUTOR);
            b.edge(self.at.id, id, 0, b.serial);
            let i = index.into_node(b);
            b.edge(i, id, 1, b.serial);
            Node::new(id, b.serial)
        })
    }
}

// ---- arithmetic -----------------------------------------------------------------------------

macro_rules! arith {
    ($tr:ident, $m:ident, $sym:literal, $name:ident) => {
        struct $name<T>(PhantomData<T>);
        impl<T: Value + std::ops::$tr<Output = T>> $name<T> {
            const OP: &'static InternalOp = &InternalOp {
                name: $sym,
                tag: 0,
                internal: false,
                run: |args: &mut Args| {
                    let a = args.take::<T>(0)?;
                    let b = args.take::<T>(1)?;
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        std::ops::$tr::$m(a, b)
                    })) {
                        Ok(v) => Ok(Output::new(v)),
                        Err(p) => Err(TaskError::Panicked(crate::invoke::panic_message(&p))),
                    }
                },
            };
        }
        impl<T: Value + std::ops::$tr<Output = T>, R: IntoNode<T>> std::ops::$tr<R> for Node<T> {
            type Output = Node<T>;
            fn $m(self, rhs: R) -> Node<T> {
                binary::<T, R>(self, rhs, $name::<T>::OP)
            }
        }
    };
}
arith!(Add, add, "+", AddOp);
arith!(Sub, sub, "-", SubOp);
arith!(Mul, mul, "*", MulOp);
arith!(Div, div, "/", DivOp);

fn binary<T, R: IntoNode<T>>(lhs: Node<T>, rhs: R, op: &'static InternalOp) -> Node<T> {
    with_builder("an arithmetic operator on a Node", |b| {
        b.check(lhs.at.graph);
        let id = b.push(Op::Internal(op), NO_EXECUTOR);
        b.edge(lhs.at.id, id, 0, b.serial);
        let r = rhs.into_node(b);
        b.edge(r, id, 1, b.serial);
        Node::new(id, b.serial)
    })
}

macro_rules! arith_lhs {
    ($($t:ty),*) => {$(
        impl std::ops::Add<Node<$t>> for $t {
            type Output = Node<$t>;
            fn add(self, rhs: Node<$t>) -> Node<$t> { binary_rev(self, rhs, AddOp::<$t>::OP) }
        }
        impl std::ops::Sub<Node<$t>> for $t {
            type Output = Node<$t>;
            fn sub(self, rhs: Node<$t>) -> Node<$t> { binary_rev(self, rhs, SubOp::<$t>::OP) }
        }
        impl std::ops::Mul<Node<$t>> for $t {
            type Output = Node<$t>;
            fn mul(self, rhs: Node<$t>) -> Node<$t> { binary_rev(self, rhs, MulOp::<$t>::OP) }
        }
        impl std::ops::Div<Node<$t>> for $t {
            type Output = Node<$t>;
            fn div(self, rhs: Node<$t>) -> Node<$t> { binary_rev(self, rhs, DivOp::<$t>::OP) }
        }
    )*};
}
arith_lhs!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
);

fn binary_rev<T: Value>(lhs: T, rhs: Node<T>, op: &'static InternalOp) -> Node<T> {
    with_builder("an arithmetic operator on a Node", |b| {
        b.check(rhs.at.graph);
        let id = b.push(Op::Internal(op), NO_EXECUTOR);
        let l = b.param(Output::new(lhs));
        b.edge(l, id, 0, b.serial);
        b.edge(rhs.at.id, id, 1, b.serial);
        Node::new(id, b.serial)
    })
}

// ---- the arena ------------------------------------------------------------------------------

/// A node the runtime adds by itself (collect, tuple, index, arithmetic).
pub(crate) struct InternalOp {
    pub name: &'static str,
    /// Tells apart ops that share a name and inputs (the index of a tuple field).
    pub tag: u32,
    /// Hidden from task counts (parameters, collections, indexing).
    pub internal: bool,
    pub run: fn(&mut Args) -> Result<Output, TaskError>,
}

pub(crate) enum Op {
    /// A literal argument; its value is known at build time.
    Param(Option<Output>),
    Electron(&'static ElectronDef),
    Internal(&'static InternalOp),
}

impl Op {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Param(_) => ":parameter:",
            Op::Electron(d) => d.name,
            Op::Internal(o) => o.name,
        }
    }
    pub(crate) fn is_internal(&self) -> bool {
        match self {
            Op::Param(_) => true,
            Op::Electron(_) => false,
            Op::Internal(o) => o.internal,
        }
    }
}

pub(crate) struct NodeSpec {
    pub op: Op,
    /// Index into [`Graph::executors`], or [`NO_EXECUTOR`].
    pub executor: u32,
}

#[derive(Clone, Copy)]
struct Edge {
    src: u32,
    dst: u32,
    slot: u32,
}

/// A built transport graph: a dense arena of nodes with compressed input and dependant lists.
pub struct Graph {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) executors: Vec<ExecutorSel>,
    /// Input rows: `inputs[in_off[i]..in_off[i+1]]` are `(source, slot)` of node `i` in slot
    /// order, ordering edges last.
    pub(crate) in_off: Vec<u32>,
    pub(crate) inputs: Vec<(u32, u32)>,
    /// Dependant rows: `deps[out_off[i]..out_off[i+1]]`.
    pub(crate) out_off: Vec<u32>,
    pub(crate) deps: Vec<u32>,
    /// The node whose value is the lattice's result.
    pub(crate) output: u32,
    /// The lattice-level default executor.
    pub(crate) default_executor: Option<ExecutorSel>,
    pub(crate) name: String,
    pub(crate) inputs_json: Vec<(String, serde_json::Value)>,
    pub(crate) fail_fast: bool,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graph")
            .field("name", &self.name)
            .field("nodes", &self.nodes.len())
            .field("edges", &self.inputs.len())
            .finish()
    }
}

impl Graph {
    /// Wraps the graph for the trip through a sublattice's body ([`SubGraph`]).
    pub(crate) fn into_sub(self) -> SubGraph {
        SubGraph(Box::new(self))
    }

    /// The graph a sublattice's body built.
    pub(crate) fn from_sub(sub: SubGraph) -> Graph {
        *sub.0
            .downcast::<Graph>()
            .expect("a sublattice's body builds its graph through `__private::sublattice`")
    }

    /// Number of nodes, internal ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// Number of task nodes (internal parameter/collection nodes excluded).
    pub fn task_count(&self) -> usize {
        self.nodes.iter().filter(|n| !n.op.is_internal()).count()
    }
    pub(crate) fn inputs_of(&self, i: usize) -> &[(u32, u32)] {
        &self.inputs[self.in_off[i] as usize..self.in_off[i + 1] as usize]
    }
    pub(crate) fn deps_of(&self, i: usize) -> &[u32] {
        &self.deps[self.out_off[i] as usize..self.out_off[i + 1] as usize]
    }
    /// Edge label of input `slot` of node `i`.
    pub(crate) fn edge_name(&self, i: usize, slot: u32) -> String {
        if slot == WAIT_SLOT {
            return "!waiting_edge".into();
        }
        match &self.nodes[i].op {
            Op::Electron(d) => d
                .params
                .get(slot as usize)
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("arg{slot}")),
            _ => format!("[{slot}]"),
        }
    }
}

static GRAPH_SERIAL: AtomicU32 = AtomicU32::new(1);

/// The graph under construction (installed by `#[lattice]` while its body runs).
#[doc(hidden)]
pub struct Builder {
    serial: u32,
    nodes: Vec<NodeSpec>,
    edges: Vec<Edge>,
    executors: Vec<ExecutorSel>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            serial: GRAPH_SERIAL.fetch_add(1, Ordering::Relaxed),
            nodes: Vec::new(),
            edges: Vec::new(),
            executors: Vec::new(),
        }
    }

    pub(crate) fn serial(&self) -> u32 {
        self.serial
    }

    fn check(&self, graph: u32) {
        if graph != self.serial {
            panic!(
                "a Node from another lattice was used here: nodes belong to the lattice body that created them"
            );
        }
    }

    pub(crate) fn push(&mut self, op: Op, executor: u32) -> u32 {
        let id = self.nodes.len() as u32;
        self.nodes.push(NodeSpec { op, executor });
        id
    }

    pub(crate) fn param(&mut self, v: Output) -> u32 {
        self.push(Op::Param(Some(v)), NO_EXECUTOR)
    }

    pub(crate) fn edge(&mut self, src: u32, dst: u32, slot: u32, graph: u32) {
        self.check(graph);
        self.edges.push(Edge { src, dst, slot });
    }

    pub(crate) fn executor_index(&mut self, sel: ExecutorSel) -> u32 {
        if let Some(i) = self.executors.iter().position(|e| e.same(&sel)) {
            return i as u32;
        }
        self.executors.push(sel);
        (self.executors.len() - 1) as u32
    }

    /// Freezes the arena into compressed rows.
    pub(crate) fn finish(self, output: u32) -> Graph {
        let n = self.nodes.len();
        // Inputs: stable counting sort by destination keeps slot order; ordering edges go last.
        let mut in_off = vec![0u32; n + 1];
        let mut out_off = vec![0u32; n + 1];
        for e in &self.edges {
            in_off[e.dst as usize + 1] += 1;
            out_off[e.src as usize + 1] += 1;
        }
        for i in 0..n {
            in_off[i + 1] += in_off[i];
            out_off[i + 1] += out_off[i];
        }
        let mut inputs = vec![(0u32, 0u32); self.edges.len()];
        let mut deps = vec![0u32; self.edges.len()];
        let mut in_fill = in_off.clone();
        let mut out_fill = out_off.clone();
        for e in self.edges.iter().filter(|e| e.slot != WAIT_SLOT) {
            inputs[in_fill[e.dst as usize] as usize] = (e.src, e.slot);
            in_fill[e.dst as usize] += 1;
        }
        for e in &self.edges {
            if e.slot == WAIT_SLOT {
                inputs[in_fill[e.dst as usize] as usize] = (e.src, e.slot);
                in_fill[e.dst as usize] += 1;
            }
            deps[out_fill[e.src as usize] as usize] = e.dst;
            out_fill[e.src as usize] += 1;
        }
        Graph {
            nodes: self.nodes,
            executors: self.executors,
            in_off,
            inputs,
            out_off,
            deps,
            output,
            default_executor: None,
            name: String::new(),
            inputs_json: Vec::new(),
            fail_fast: false,
        }
    }
}

thread_local! {
    static BUILDERS: RefCell<Vec<Builder>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the builder of the lattice body being built on this thread.
///
/// # Panics
/// Outside a lattice body, with a message that names `what`.
pub(crate) fn with_builder<R>(what: &str, f: impl FnOnce(&mut Builder) -> R) -> R {
    BUILDERS.with(|s| {
        let mut s = s.borrow_mut();
        match s.last_mut() {
            Some(b) => f(b),
            None => {
                drop(s);
                panic!(
                    "{what} was used outside a #[lattice] body: electrons called in a lattice add nodes to its graph. \
                     To run an electron as plain Rust, call `NAME::call(..)`"
                )
            }
        }
    })
}

/// Runs a lattice body with a fresh builder installed; returns the finished arena.
pub(crate) fn build(body: impl FnOnce() -> u32) -> Graph {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            BUILDERS.with(|s| {
                s.borrow_mut().pop();
            });
        }
    }
    BUILDERS.with(|s| s.borrow_mut().push(Builder::new()));
    let guard = Pop;
    let output = body();
    let b = BUILDERS
        .with(|s| s.borrow_mut().pop())
        .expect("builder stack");
    std::mem::forget(guard);
    b.finish(output)
}
