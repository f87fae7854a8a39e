//! The node helpers where Covalent has operators: tuple fields and splitting, indexing into
//! a `Node<Vec<T>>`, and arithmetic on numeric nodes. Each adds an internal node.
//!
//! This module owns these internal ops; it runs nothing at build time.

use std::marker::PhantomData;

use super::arena::{Builder, InternalOp, NO_EXECUTOR, Op, with_builder};
use super::node::{IntoNode, Node};
use crate::electron::{Args, TaskError};
use crate::value::{Output, Value};

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
