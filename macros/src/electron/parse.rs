//! Reading `#[electron(...)]` and its item: the options (bad ones are reported and ignored), the
//! function (its body stays unparsed tokens) and a `#[lattice(...)]` below, which makes a
//! sublattice. Nothing here checks the function's shape.

use proc_macro2::TokenStream;
use syn::Meta;

use super::Parsed;
use crate::errors::Report;
use crate::function::Function;
use crate::names::has_name;
use crate::options::{ElectronOptions, LatticeOptions};

/// Reads the options and the function; `None` when the item is not a function (a hard error)
/// or its signature does not parse (left to rustc).
pub(super) fn parse(attr: TokenStream, item: &TokenStream, report: &mut Report) -> Option<Parsed> {
    let options = ElectronOptions::parse(attr, &mut report.soft);
    let mut func = Function::read(item, "#[electron]", &mut report.hard)?;
    let mut sublattice = None;
    let mut kept = Vec::with_capacity(func.attrs.len());
    for attr in std::mem::take(&mut func.attrs) {
        if !has_name(&attr, "lattice") {
            kept.push(attr);
            continue;
        }
        if sublattice.is_some() {
            report
                .soft
                .spanned(&attr, "duplicate `#[lattice]` attribute");
            continue;
        }
        let tokens = match &attr.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens.clone(),
            Meta::NameValue(_) => {
                report.soft.spanned(
                    &attr,
                    "`#[lattice]` takes its options in parentheses, as in `#[lattice(fail_fast = true)]`",
                );
                TokenStream::new()
            }
        };
        sublattice = Some(LatticeOptions::parse(tokens, &mut report.soft));
    }
    func.attrs = kept;
    Some(Parsed {
        options,
        func,
        sublattice,
    })
}
