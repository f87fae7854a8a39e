//! `#[electron]`: turns a function into a task. The function's name becomes a wrapper that,
//! inside a lattice body, records a node and returns a typed `Node<T>`; a module of the same
//! name holds the function as written (`NAME::call`), its static description (`NAME::ELECTRON`)
//! and its registration, so a worker process can find it by its stable path.
//!
//! With `#[lattice]` below it, the function becomes a sublattice: one node whose body builds
//! and returns a child graph at run time (`NAME::lattice` builds it standalone).
//!
//! The module starts with `use super::*;`, so the body as written sees the names of the
//! enclosing module; two things it cannot see: items declared inside a function body around the
//! electron (a `mod` there cannot name them), and an outer item named `call` (or `lattice`),
//! which the generated function of that name shadows.
//!
//! Expansion runs in three steps, one submodule each: [`parse`] reads the attribute and the
//! item (the body stays unparsed tokens), [`validate`] collects every problem, [`generate`]
//! writes the code ([`digest`] fingerprints the source for it). This module only holds the
//! types passed between the steps; none of them may name any crate but `::covalent`.

mod digest;
mod generate;
mod parse;
#[cfg(test)]
mod tests;
mod validate;

use proc_macro2::{Group, TokenStream};
use syn::{Attribute, Signature, Type, Visibility};

use crate::errors::Report;
use crate::function::Function;
use crate::lattice::LatticeBody;
use crate::options::{ElectronOptions, LatticeOptions};
use crate::signature::Param;

/// Expands `#[electron(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut report = Report::default();
    let Some(parsed) = parse::parse(attr, &item, &mut report) else {
        return report.emit(item, || None);
    };
    // On a hard error the function is emitted as written, without the `#[lattice]` this
    // macro consumed (which would report the same problems again).
    let unchanged = quote::ToTokens::to_token_stream(&parsed.func);
    let checked = validate::validate(parsed, &mut report);
    report.emit(unchanged, || checked.as_ref().map(generate::generate))
}

/// The attribute and the item, read but not yet checked.
struct Parsed {
    options: ElectronOptions,
    /// The function, without the `#[lattice]` attribute below `#[electron]`.
    func: Function,
    /// `#[lattice(...)]` found below `#[electron]`, with its options.
    sublattice: Option<LatticeOptions>,
}

/// What a checked electron is made of.
struct Electron {
    options: ElectronOptions,
    /// Attributes that stay on the wrapper (docs, lints, `cfg`, ...).
    attrs: Vec<Attribute>,
    vis: Visibility,
    ident: syn::Ident,
    /// Parameters as written, for the wrapper.
    params: Vec<Param>,
    /// The return type as written (`()` if none), for the wrapper.
    output: Type,
    /// The signature, moved one module deeper (see `relocate.rs`), for `call`.
    inner_sig: Signature,
    /// The body as written (unparsed), moved one module deeper, for `call`.
    inner_body: Group,
    /// The parameters of `inner_sig`.
    inner_params: Vec<Param>,
    /// The digest of the function as written.
    digest: String,
    kind: Kind,
}

enum Kind {
    /// A plain function returning `R`: the node's value is `R`.
    Task,
    /// A function returning `Result<T, E>` (any path ending in `Result`): the node's value is
    /// `T` and an `Err` fails the node. `ok` is `T` as written, when it is written.
    Fallible { ok: Option<Type> },
    /// `#[electron] #[lattice]`, with the body (moved one module deeper) as the lattice
    /// generator reads it.
    Sublattice(LatticeOptions, LatticeBody),
}
