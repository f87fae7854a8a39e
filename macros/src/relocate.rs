//! Moving user code one module deeper: `#[electron]` puts the function as written into a
//! module of the same name (`add::call`), so paths relative to the user's module must be
//! adjusted: `self::x` becomes `super::x` and `super::x` becomes `super::super::x`.
//!
//! The rewrite works on tokens, so it needs no parsed body: it only looks for `self` and
//! `super` at the start of a path (followed by `::`, not preceded by it). Plain names need
//! nothing: the generated module starts with `use super::*;`. The arguments of macro
//! invocations and attributes, and nested `mod` items, are left as written (their paths cannot
//! be rewritten reliably, or are relative to another module). This module reports no errors.

use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::Parse;

/// `tokens` rewritten for one more level of module nesting.
pub(crate) fn deeper(tokens: TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = TokenStream::new();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Ident(ident) if starts_relative_path(&trees, i) => {
                let span = ident.span();
                let mut sup = Ident::new("super", span);
                if ident == "super" {
                    sup.to_tokens(&mut out);
                    let mut first = Punct::new(':', Spacing::Joint);
                    first.set_span(span);
                    let mut second = Punct::new(':', Spacing::Alone);
                    second.set_span(span);
                    out.extend([TokenTree::Punct(first), TokenTree::Punct(second)]);
                    sup = ident.clone();
                }
                sup.to_tokens(&mut out);
            }
            TokenTree::Group(group) => {
                let stream = if is_attribute(&trees, i) {
                    deeper_leading_path(group.stream())
                } else if is_macro_input(&trees, i) || is_module_body(&trees, i) {
                    group.stream()
                } else {
                    deeper(group.stream())
                };
                let mut rewritten = Group::new(group.delimiter(), stream);
                rewritten.set_span(group.span());
                rewritten.to_tokens(&mut out);
            }
            other => other.to_tokens(&mut out),
        }
    }
    out
}

/// A parsed node (a type, a path) rewritten like [`deeper`]; unchanged if the rewrite does not
/// read back (it always should: it only replaces and inserts path segments).
pub(crate) fn deeper_node<T: Parse + ToTokens + Clone>(node: &T) -> T {
    syn::parse2(deeper(node.to_token_stream())).unwrap_or_else(|_| node.clone())
}

fn is_punct(tree: Option<&TokenTree>, ch: char) -> bool {
    matches!(tree, Some(TokenTree::Punct(p)) if p.as_char() == ch)
}

fn is_joint(tree: Option<&TokenTree>, ch: char) -> bool {
    matches!(tree, Some(TokenTree::Punct(p)) if p.as_char() == ch && p.spacing() == Spacing::Joint)
}

/// `::` at `trees[at..]`.
fn is_path_sep(trees: &[TokenTree], at: usize) -> bool {
    is_joint(trees.get(at), ':') && is_punct(trees.get(at + 1), ':')
}

/// `self` or `super` followed by `::`, as the first segment of a path.
fn starts_relative_path(trees: &[TokenTree], i: usize) -> bool {
    let TokenTree::Ident(ident) = &trees[i] else {
        return false;
    };
    (ident == "self" || ident == "super")
        && is_path_sep(trees, i + 1)
        && !(i >= 2 && is_path_sep(trees, i - 2))
}

/// The `[...]` of `#[...]` or `#![...]`.
fn is_attribute(trees: &[TokenTree], i: usize) -> bool {
    let TokenTree::Group(group) = &trees[i] else {
        return false;
    };
    group.delimiter() == Delimiter::Bracket
        && i >= 1
        && (is_punct(trees.get(i - 1), '#')
            || (i >= 2 && is_punct(trees.get(i - 1), '!') && is_punct(trees.get(i - 2), '#')))
}

/// The group of `name!(...)`, `name![...]`, `name! {...}` or `macro_rules! name {...}`.
fn is_macro_input(trees: &[TokenTree], i: usize) -> bool {
    let bang_at = match i.checked_sub(1).map(|at| &trees[at]) {
        Some(TokenTree::Punct(p)) if p.as_char() == '!' => i - 1,
        Some(TokenTree::Ident(_)) if i >= 2 && is_punct(trees.get(i - 2), '!') => i - 2,
        _ => return false,
    };
    // `if !(a && b) {}` negates; a lifetime (`'a !(..)`) is no macro name either.
    bang_at >= 1
        && matches!(&trees[bang_at - 1], TokenTree::Ident(name) if !is_keyword(name))
        && !(bang_at >= 2 && is_punct(trees.get(bang_at - 2), '\''))
}

/// The `{...}` of `mod name {...}`.
fn is_module_body(trees: &[TokenTree], i: usize) -> bool {
    i >= 2
        && matches!(&trees[i - 1], TokenTree::Ident(_))
        && matches!(&trees[i - 2], TokenTree::Ident(kw) if kw == "mod")
}

/// The tokens of an attribute with only its leading path (`self::attr` in `#[self::attr(..)]`)
/// rewritten.
fn deeper_leading_path(tokens: TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let path_len = trees
        .iter()
        .position(|t| !matches!(t, TokenTree::Ident(_)) && !is_punct(Some(t), ':'))
        .unwrap_or(trees.len());
    let mut out = deeper(trees[..path_len].iter().cloned().collect());
    out.extend(trees[path_len..].iter().cloned());
    out
}

/// Rust's strict and reserved keywords: none of them names a macro.
fn is_keyword(ident: &Ident) -> bool {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod",
        "move", "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super",
        "trait", "true", "try", "type", "unsafe", "use", "where", "while", "abstract", "become",
        "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield",
    ];
    KEYWORDS.iter().any(|kw| ident == kw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(code: &str) -> String {
        deeper(code.parse().expect("test code tokenizes")).to_string()
    }

    fn tokens(code: &str) -> String {
        code.parse::<TokenStream>()
            .expect("expected code tokenizes")
            .to_string()
    }

    #[test]
    fn module_relative_paths_go_one_level_up() {
        assert_eq!(
            rewrite("{ let a: self::T = super::f(self::g::<super::U>()); a }"),
            tokens("{ let a: super::T = super::super::f(super::g::<super::super::U>()); a }")
        );
        assert_eq!(
            rewrite("<T as self::Tr>::f(super::super::x)"),
            tokens("<T as super::Tr>::f(super::super::super::x)")
        );
    }

    #[test]
    fn plain_and_absolute_paths_are_untouched() {
        let code = "{ self.x + f(crate::a::b, ::std::f64::consts::PI, Self::new()); pub(super) fn g() {} }";
        assert_eq!(rewrite(code), tokens(code));
    }

    #[test]
    fn use_declarations_are_rewritten() {
        assert_eq!(
            rewrite(
                "{ use self::a::b; use super::c; use {self::d, e}; use super::*; use f::{self, g}; }"
            ),
            tokens(
                "{ use super::a::b; use super::super::c; use {super::d, e}; use super::super::*; use f::{self, g}; }"
            )
        );
    }

    #[test]
    fn macro_arguments_attributes_and_modules_are_left_as_written() {
        let code = "{ m!(self::x); vec![super::y]; macro_rules! n { () => { self::z } } \
                    mod inner { use super::w; } #[cfg(self::q)] let a = 1; }";
        assert_eq!(rewrite(code), tokens(code));
        // The macro's own path is rewritten, like an attribute's.
        assert_eq!(
            rewrite("{ self::m!(self::x); #[super::attr(self::y)] fn f() {} }"),
            tokens("{ super::m!(self::x); #[super::super::attr(self::y)] fn f() {} }")
        );
    }

    #[test]
    fn negations_are_not_macros() {
        assert_eq!(
            rewrite("{ if !(self::a()) {} while !(super::b()) {} }"),
            tokens("{ if !(super::a()) {} while !(super::super::b()) {} }")
        );
    }

    #[test]
    fn parsed_nodes_are_rewritten_too() {
        let ty: syn::Type = syn::parse_str("Vec<super::Point>").expect("type parses");
        assert_eq!(
            deeper_node(&ty).to_token_stream().to_string(),
            tokens("Vec<super::super::Point>")
        );
    }
}
