//! [`Error`]: the errors of the dispatch API (configuration, store, replacing electrons, the
//! async runtime, reading a result as its type). Failures of nodes are not errors here: they
//! are [`NodeError`](crate::NodeError)s recorded on the nodes.
//!
//! This module owns the facade's error type only.

use crate::config::ConfigError;
use crate::store::StoreError;

/// Errors of the dispatch API. Failures of nodes are not errors here: they are recorded in the
/// [`LatticeResult`](crate::LatticeResult), whose status is then `FAILED`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The configuration could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A replacement electron does not fit the one it replaces.
    #[error("cannot replace electron `{old}` with `{new}`: {reason}")]
    Replace {
        /// The replaced electron.
        old: String,
        /// The replacement.
        new: String,
        /// Why not.
        reason: String,
    },
    /// The async runtime cannot be used that way.
    #[error("{0}")]
    Runtime(String),
    /// A lattice input of a recorded dispatch has no faithful JSON form (a NaN, a map key that
    /// is not a string, ...): recorded dispatches store every input.
    #[error(
        "lattice `{lattice}`: input `{input}` cannot be recorded faithfully as JSON, {reason} (or dispatch it with `.record(false)`, which keeps values in this process only)"
    )]
    Input {
        /// The lattice.
        lattice: String,
        /// The parameter.
        input: String,
        /// What in the value has no JSON form, and where.
        reason: String,
    },
    /// The lattice's result could not be read as its declared type.
    #[error("the result of lattice `{lattice}` is not a `{expected}`: {reason}")]
    Output {
        /// The lattice.
        lattice: String,
        /// The declared type.
        expected: &'static str,
        /// Why.
        reason: String,
    },
    /// A dispatch could not be detached, resumed or cancelled from another process (what and
    /// why, with what to do).
    #[error("{0}")]
    Durable(String),
}
