//! Attribute options: the `key = value, ...` lists inside `#[electron(...)]` and
//! `#[lattice(...)]`, parsed once by a shared parser and then checked against each macro's
//! table of keys into typed option structs.
//!
//! The options own every message about an option (unknown, duplicated, missing or malformed
//! values); they know nothing about the function the attribute sits on and generate no code
//! except the literal forms of option values. The work is split by concern:
//!
//! - [`syntax`]: the grammar of the argument list, as raw `key = value` pairs.
//! - [`schema`]: each macro's keys and the messages for unknown, duplicated and value-less
//!   options.
//! - [`values`]: what each option's value may be, and the message when it is not.
//! - [`sets`]: the typed option set of each macro, filled from the checked pairs.
//! - [`tokens`]: the literal forms of option values in generated code.
//!
//! This file only declares the parts and re-exports what the rest of the crate uses; the
//! parts import each other by their own paths, never through here.

mod schema;
mod sets;
mod syntax;
mod tokens;
mod values;

#[cfg(test)]
mod tests;

pub(crate) use crate::options::sets::{ElectronOptions, LatticeOptions};
pub(crate) use crate::options::tokens::{duration_tokens, hook_name, str_slice};
pub(crate) use crate::options::values::ExecutorOpt;
