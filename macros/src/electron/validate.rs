//! Checking a parsed electron: the function's shape (hard errors, see `signature.rs`), the
//! lattice rules for a sublattice, and the node's value type for a `Result`-returning function.
//! The checked electron carries the function moved one module deeper, ready for generation.

use proc_macro2::Group;
use syn::{GenericArgument, PathArguments, ReturnType, Type};

use super::{Electron, Kind, Parsed, digest};
use crate::errors::Report;
use crate::lattice::{self, LatticeBody};
use crate::relocate::{deeper, deeper_node};
use crate::signature::{self, ELECTRON, Param};

/// Checks the function's shape (hard errors) and, for a sublattice, the lattice rules (an
/// `async` is reported and dropped; an early exit is a hard error).
pub(super) fn validate(parsed: Parsed, report: &mut Report) -> Option<Electron> {
    let Parsed {
        options,
        func,
        sublattice,
    } = parsed;
    let params = signature::check(&func.sig, &ELECTRON, &mut report.hard);
    let mut inner_body = Group::new(func.body.delimiter(), deeper(func.body.stream()));
    inner_body.set_span(func.body.span());
    let kind = match sublattice {
        Some(lattice_options) => {
            lattice::check_not_async(&func.sig, &mut report.soft);
            let body = LatticeBody::read(&inner_body);
            body.check_no_early_exit(&mut report.hard);
            Kind::Sublattice(lattice_options, body)
        }
        None => match result_ok_type(&func.sig.output) {
            Some(ok) => Kind::Fallible { ok },
            None => Kind::Task,
        },
    };
    if !report.hard.is_empty() {
        return None;
    }
    let digest = digest::of(&func);
    let inner_sig = deeper_node(&func.sig);
    let inner_params = params
        .iter()
        .map(|p| Param {
            ty: deeper_node(&p.ty),
            ..p.clone()
        })
        .collect();
    Some(Electron {
        options,
        output: signature::return_type(&func.sig).0,
        ident: func.sig.ident,
        attrs: func.attrs,
        vis: func.vis,
        params,
        inner_sig,
        inner_body,
        inner_params,
        digest,
        kind,
    })
}

/// For a return type that is a path ending in `Result` (`Result<T, E>`, `anyhow::Result<T>`,
/// `std::io::Result<T>`), `Some` of its first type argument (`T`, by the convention every
/// `Result` alias follows; `None` when none is written); `None` for any other type.
pub(super) fn result_ok_type(output: &ReturnType) -> Option<Option<Type>> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::Path(p) = &**ty else {
        return None;
    };
    let last = p.path.segments.last()?;
    if p.qself.is_some() || last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Some(None);
    };
    Some(args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }))
}
