//! Procedural macros for `covalent`: `#[electron]` turns a function into a task, `#[lattice]`
//! turns a function into a workflow, and `#[covalent::main]` / `#[covalent::test]` run async
//! entry points on the engine's runtime.
//!
//! Use them through the `covalent` crate, which re-exports them; this crate is an
//! implementation detail and its generated code reaches every dependency through
//! `::covalent::__private`.
//!
//! ```ignore
//! // Runs in the `covalent` crate's docs (this crate cannot depend on it).
//! use covalent::prelude::*;
//!
//! #[electron]
//! fn add(x: i64, y: i64) -> i64 { x + y }
//!
//! #[lattice]
//! fn workflow(x: i64, y: i64) -> i64 { add(x, y) }
//! ```
//!
//! Layout: each entry point below only converts between `proc_macro` and `proc_macro2` token
//! streams and calls the `expand` function of its module (`electron`, `lattice`, `main_fn`),
//! which parses, validates and generates, in that order. Shared steps have their own modules:
//! `function` (the item: signature parsed, body kept as tokens), `options` (the `key = value`
//! option lists), `signature` (which functions are accepted), `relocate` (paths of code moved
//! into the electron's module), `names` and `errors` (every problem is collected before
//! reporting; on a problem the macro still emits the user's function, or its expansion when the
//! problem can be worked around, so the IDE and the rest of the crate keep working).
//!
//! Bodies are never required to parse: a syntax error inside one is reported by rustc alone,
//! and the macro expands around the body as written.

#![forbid(unsafe_code)]

mod electron;
mod errors;
mod function;
mod lattice;
mod main_fn;
mod names;
mod options;
mod relocate;
mod signature;

use proc_macro::TokenStream;

/// Makes a function an electron: a task whose call inside a `#[lattice]` body adds a node to the
/// workflow's graph and returns a typed `Node<T>` handle.
///
/// Options: `executor = "name"` or an executor expression, `name = "display name"`,
/// `retries = 2`, `time_limit = "30s"`, `deps_bash = "cmd"` or `["cmd", ...]`,
/// `call_before = path` or `[path, ...]`, `call_after = path` or `[path, ...]`.
///
/// The function as written stays callable as plain Rust through `NAME::call(..)`.
#[proc_macro_attribute]
pub fn electron(attr: TokenStream, item: TokenStream) -> TokenStream {
    electron::expand(attr.into(), item.into()).into()
}

/// Makes a function a lattice: calling it runs its body once to build the workflow's graph and
/// returns a `covalent::Lattice<T>` ready to dispatch.
///
/// Options: `executor = ...` (the default executor of its electrons), `name = "display name"`,
/// `fail_fast = true`. Put `#[electron]` above `#[lattice]` to make a sublattice.
#[proc_macro_attribute]
pub fn lattice(attr: TokenStream, item: TokenStream) -> TokenStream {
    lattice::expand(attr.into(), item.into()).into()
}

/// Runs `async fn main` on covalent's multi-threaded runtime (and serves as the worker entry
/// when an executor re-runs the program).
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    main_fn::expand_main(attr.into(), item.into()).into()
}

/// Runs an `async fn` test on covalent's multi-threaded runtime.
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    main_fn::expand_test(attr.into(), item.into()).into()
}
