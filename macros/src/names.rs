//! Names in generated code: user names as users read them, hygienic names for generated
//! locals, and recognition of the attributes the macros look for among the user's.
//!
//! This module has no knowledge of any particular macro.

use proc_macro2::Span;
use syn::{Attribute, Ident};

/// A name as users read it (`r#match` → `match`): display names, edge labels, input names.
pub(crate) fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

/// The identifier of a generated local: hygienic, so it never clashes with the user's names.
pub(crate) fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// Whether an attribute's path ends in `name` (`#[electron]`, `#[covalent::electron(..)]`).
pub(crate) fn has_name(attr: &Attribute, name: &str) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_names_read_plain() {
        let ident: Ident = syn::parse_str("r#match").expect("raw ident parses");
        assert_eq!(unraw(&ident), "match");
    }

    #[test]
    fn attributes_are_recognized_by_their_last_segment() {
        let attrs: Vec<Attribute> = vec![
            syn::parse_quote!(#[lattice]),
            syn::parse_quote!(#[covalent::lattice(fail_fast = true)]),
            syn::parse_quote!(#[latticed]),
        ];
        let found: Vec<bool> = attrs.iter().map(|a| has_name(a, "lattice")).collect();
        assert_eq!(found, [true, true, false]);
    }
}
