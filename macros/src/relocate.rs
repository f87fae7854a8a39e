//! Moving user code one module deeper: `#[electron]` puts the function as written into a
//! module of the same name (`add::call`), so paths relative to the user's module must be
//! adjusted: `self::x` becomes `super::x` and `super::x` becomes `super::super::x`.
//!
//! Plain names need nothing: the generated module starts with `use super::*;`. Paths inside
//! macro invocations and nested `mod` items are left as written (they cannot be rewritten
//! reliably). This module only rewrites syntax trees; it reports no errors.

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{Ident, Path, PathSegment, UseTree};

/// A visitor that rewrites every module-relative path it visits for one more level of nesting:
/// `Deeper.visit_block_mut(&mut body)`.
pub(crate) struct Deeper;

fn is(ident: &Ident, name: &str) -> bool {
    ident == name
}

impl VisitMut for Deeper {
    fn visit_path_mut(&mut self, path: &mut Path) {
        // A lone `self` is the receiver value, never a module path.
        if path.leading_colon.is_none() && path.segments.len() >= 2 {
            let first = &mut path.segments[0].ident;
            if is(first, "self") {
                *first = Ident::new("super", first.span());
            } else if is(first, "super") {
                let span = first.span();
                let mut segments = Punctuated::new();
                segments.push(PathSegment::from(Ident::new("super", span)));
                segments.extend(std::mem::take(&mut path.segments));
                path.segments = segments;
            }
        }
        visit_mut::visit_path_mut(self, path);
    }

    fn visit_item_use_mut(&mut self, item: &mut syn::ItemUse) {
        if item.leading_colon.is_none() {
            deeper_use(&mut item.tree);
        }
    }

    fn visit_item_mod_mut(&mut self, _: &mut syn::ItemMod) {
        // `self` and `super` inside a nested module are relative to that module.
    }
}

fn deeper_use(tree: &mut UseTree) {
    match tree {
        UseTree::Path(p) if is(&p.ident, "self") => p.ident = Ident::new("super", p.ident.span()),
        UseTree::Path(p) if is(&p.ident, "super") => {
            let span = p.ident.span();
            let rest = std::mem::replace(
                &mut *p.tree,
                UseTree::Name(syn::UseName {
                    ident: Ident::new("_", Span::call_site()),
                }),
            );
            *p.tree = UseTree::Path(syn::UsePath {
                ident: Ident::new("super", span),
                colon2_token: Default::default(),
                tree: Box::new(rest),
            });
        }
        UseTree::Group(g) => g.items.iter_mut().for_each(deeper_use),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn block(code: &str) -> String {
        let mut block: syn::Block = syn::parse_str(code).expect("test block parses");
        Deeper.visit_block_mut(&mut block);
        block.to_token_stream().to_string()
    }

    fn tokens(code: &str) -> String {
        let block: syn::Block = syn::parse_str(code).expect("expected block parses");
        block.to_token_stream().to_string()
    }

    #[test]
    fn module_relative_paths_go_one_level_up() {
        assert_eq!(
            block("{ let a: self::T = super::f(self::g()); a }"),
            tokens("{ let a: super::T = super::super::f(super::g()); a }")
        );
    }

    #[test]
    fn plain_and_absolute_paths_are_untouched() {
        let code = "{ self.x + f(crate::a::b, ::std::f64::consts::PI, Self::new()) }";
        assert_eq!(block(code), tokens(code));
    }

    #[test]
    fn use_declarations_are_rewritten() {
        assert_eq!(
            block("{ use self::a::b; use super::c; use {self::d, e}; }"),
            tokens("{ use super::a::b; use super::super::c; use {super::d, e}; }")
        );
    }
}
