//! Typed handles: [`Node`] (a node's future output), [`AnyNode`], data-less ordering
//! ([`wait`], [`Waitable`]) and the [`IntoNode`] conversions that turn call arguments (values,
//! nodes, lists of nodes) into edges.
//!
//! This module owns the handles and conversions; the arena they point into is `arena.rs`'s.

use std::fmt;
use std::marker::PhantomData;

use super::arena::{Builder, InternalOp, NO_EXECUTOR, Op, WAIT_SLOT, with_builder};
use crate::electron::{Args, TaskError};
use crate::value::{Output, Value};

/// A typed handle to the future output of a node inside a lattice body.
///
/// Electron calls return `Node<T>`; pass it to other electrons wherever a `T` is expected.
/// Nothing runs while the lattice is built, so a `Node` has no value to look at: branch on
/// values inside an electron, or build the graph at run time with a sublattice.
pub struct Node<T> {
    pub(super) at: At,
    _t: PhantomData<fn() -> T>,
}

/// Where a node is: its id and the graph it belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct At {
    pub(super) id: u32,
    pub(super) graph: u32,
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
/// # covalent_test_support::isolate_home();
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
