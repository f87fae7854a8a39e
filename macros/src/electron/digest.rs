//! The source digest of an electron (`ElectronDef::digest`): a blake3 hash of the function as
//! written, so that a changed function makes a changed electron on redispatch and a worker
//! binary built from other sources is recognized.
//!
//! The hash covers the function's tokens, not its text: whitespace and comments do not change
//! it (doc comments do: they are attributes). Its format is 16 lowercase hex digits (the first
//! 8 bytes of the hash); the runtime only compares and stores it.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;

use crate::function::Function;

/// The digest of `func` (the attributes it keeps after the macro consumed its own).
pub(super) fn of(func: &Function) -> String {
    let mut text = String::new();
    canonical(func.to_token_stream(), &mut text);
    let hash = blake3::hash(text.as_bytes());
    hash.to_hex()[..16].to_string()
}

/// Writes `tokens` as text that depends only on the tokens: one space between tokens, except
/// within a multi-character operator (`&&`, `::`, `..=`), whose joint spacing is meaningful
/// (`a && b` is not `a & &b`), and after a lifetime's quote.
fn canonical(tokens: TokenStream, out: &mut String) {
    let mut trees = tokens.into_iter().peekable();
    while let Some(tree) = trees.next() {
        match tree {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("\u{2}", "\u{3}"),
                };
                out.push_str(open);
                out.push(' ');
                canonical(group.stream(), out);
                out.push_str(close);
            }
            TokenTree::Ident(ident) => out.push_str(&ident.to_string()),
            TokenTree::Literal(literal) => out.push_str(&literal.to_string()),
            TokenTree::Punct(punct) => {
                out.push(punct.as_char());
                let glued = match trees.peek() {
                    Some(TokenTree::Punct(next)) if punct.spacing() == Spacing::Joint => {
                        is_operator_pair(punct.as_char(), next.as_char())
                    }
                    _ => punct.as_char() == '\'',
                };
                if glued {
                    continue;
                }
            }
        }
        out.push(' ');
    }
}

/// Whether two characters are adjacent in one of Rust's multi-character operators.
fn is_operator_pair(first: char, second: char) -> bool {
    const PAIRS: &[&str] = &[
        "&&", "||", "::", "->", "=>", "<-", "==", "!=", "<=", ">=", "<<", ">>", "+=", "-=", "*=",
        "/=", "%=", "^=", "&=", "|=", "..", ".=",
    ];
    PAIRS.iter().any(|pair| {
        let mut chars = pair.chars();
        chars.next() == Some(first) && chars.next() == Some(second)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(item: &str) -> String {
        let function: Function = syn::parse_str(item).expect("test function parses");
        of(&function)
    }

    fn text(code: &str) -> String {
        let mut out = String::new();
        canonical(code.parse().expect("tokenizes"), &mut out);
        out
    }

    #[test]
    fn layout_and_comments_do_not_change_the_digest() {
        let one = digest("fn f(x: i64) -> i64 { x + -1 }");
        assert_eq!(one.len(), 16);
        assert!(
            one.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(
            one,
            digest("fn f(x:i64)->i64{\n    // a comment\n    x+-1 /* another */\n}")
        );
        assert_ne!(one, digest("fn f(x: i64) -> i64 { x + -2 }"));
        assert_ne!(one, digest("/// Docs.\nfn f(x: i64) -> i64 { x + -1 }"));
    }

    #[test]
    fn operators_keep_their_meaning() {
        assert_eq!(text("a&&b"), text("a && b"));
        assert_ne!(text("a && b"), text("a & &b"));
        assert_eq!(text("x..=y"), "x ..= y ");
        assert_eq!(text("'a: loop {}"), "'a : loop { } ");
    }
}
