//! The grammar of an attribute's argument list: `key = value, key = value`, read into raw
//! pairs without knowing which keys exist.
//!
//! It owns only the two syntax messages (a non-name where a key should be, a missing `,` or
//! `=`); it must not look at key names or value contents, which the schema and the value
//! checks judge.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Token};

/// One `key = value` pair as written; the value is missing for a bare `key`.
pub(crate) struct RawOption {
    pub(crate) key: Ident,
    pub(crate) value: Option<Expr>,
}

/// Parses `key = value, key = value` (a trailing comma is fine; a bare `key` is kept so that
/// validation can say which value is missing).
pub(crate) fn parse(attr: TokenStream, macro_name: &str) -> syn::Result<Vec<RawOption>> {
    let parser = |input: ParseStream<'_>| {
        let mut options = Vec::new();
        while !input.is_empty() {
            if !input.peek(Ident::peek_any) {
                return Err(input.error(format!(
                    "expected `{macro_name}` options written as `key = value`, separated by commas"
                )));
            }
            let key = input.call(Ident::parse_any)?;
            let value = if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                Some(input.parse::<Expr>()?)
            } else {
                None
            };
            options.push(RawOption { key, value });
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error(format!(
                    "expected `,` between `{macro_name}` options, or `=` after an option name"
                )));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(options)
    };
    parser.parse2(attr)
}
