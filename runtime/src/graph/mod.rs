//! The transport graph: typed [`Node`] handles, the [`IntoNode`] conversions that turn call
//! arguments into edges, and the dense arena a lattice body builds.
//!
//! Building happens on one thread through a thread-local builder that `#[lattice]` installs
//! around the body; every electron call pushes one node. The finished [`Graph`] is a flat arena
//! (ids are indices, edges in compressed rows), ready for the dispatcher. This module must not
//! run anything.
//!
//! Files: `arena` (the graph, its node specs and the builder), `node` (handles, ordering and
//! argument conversions), `ops` (tuple, indexing and arithmetic helpers).

mod arena;
mod node;
mod ops;

#[cfg(test)]
pub(crate) use arena::InternalOp;
pub use arena::{Builder, Graph};
pub(crate) use arena::{NO_EXECUTOR, Op, WAIT_SLOT, build, with_builder};
pub use node::{AnyNode, IntoNode, Node, Waitable, wait};
