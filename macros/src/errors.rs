//! Error collection: every macro gathers all the problems it finds into one [`Errors`] before
//! reporting, so a user sees every mistake of an attribute at once instead of one per build, and
//! a [`Report`] decides what is emitted next to them (the expansion, or the item unchanged).
//!
//! This module also renders user tokens inside messages; it knows nothing about any particular
//! macro.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// A growing set of `syn::Error`s, combined into one on report.
#[derive(Default)]
pub(crate) struct Errors {
    inner: Option<syn::Error>,
}

impl Errors {
    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.inner {
            Some(all) => all.combine(error),
            None => self.inner = Some(error),
        }
    }

    /// Records an error spanned on `tokens` (from their first to their last token).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records the error of a fallible step, if any, and returns its value.
    pub(crate) fn check<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// Whether nothing has been recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// The recorded errors, if any.
    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.inner
    }
}

/// The problems a macro found, split by what can still be generated.
#[derive(Default)]
pub(crate) struct Report {
    /// Problems the expansion works around (a bad option is ignored, a misplaced `async` or
    /// attribute dropped): the code is still generated, so the item's users do not cascade into
    /// more errors.
    pub(crate) soft: Errors,
    /// Problems with the item's shape: nothing sensible can be generated and the item is
    /// emitted unchanged.
    pub(crate) hard: Errors,
}

impl Report {
    /// The generated code (when there is no hard error) or the user's item unchanged, followed
    /// by a `compile_error!` for every problem.
    pub(crate) fn emit(
        self,
        item: TokenStream,
        generate: impl FnOnce() -> Option<TokenStream>,
    ) -> TokenStream {
        let Report { mut soft, hard } = self;
        let (mut out, errors) = match hard.into_error() {
            None => match generate() {
                Some(generated) => (generated, soft.into_error()),
                None => (item, soft.into_error()),
            },
            Some(hard) => {
                soft.push(hard);
                (item, soft.into_error())
            }
        };
        if let Some(errors) = errors {
            out.extend(errors.into_compile_error());
        }
        out
    }
}

/// Renders tokens (a type, a path) the way a user would write them: `&str`, `Vec<i64>`,
/// `std::io::Result<u8>`.
pub(crate) fn render(tokens: impl ToTokens) -> String {
    let raw: Vec<char> = tokens.to_token_stream().to_string().chars().collect();
    let mut out = String::with_capacity(raw.len());
    for (i, &c) in raw.iter().enumerate() {
        if c != ' ' {
            out.push(c);
            continue;
        }
        let next = raw.get(i + 1).copied();
        let path_sep = |at: usize| raw.get(at) == Some(&':') && raw.get(at + 1) == Some(&':');
        let glue_left = out.ends_with("::")
            || matches!(out.chars().last(), Some('&' | '<' | '(' | '[' | '!' | '*'));
        let glue_right =
            path_sep(i + 1) || matches!(next, Some('<' | '>' | ',' | ')' | ']' | ';' | '(' | '.'));
        let glue_dot = out.ends_with('.') && !out.ends_with("..");
        // `impl Fn(A) -> B` keeps the spaces around its arrow.
        let arrow = next == Some('-') || out.ends_with("->");
        if arrow || !(glue_left || glue_right || glue_dot) {
            out.push(' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    fn ty(s: &str) -> syn::Type {
        syn::parse_str(s).expect("test type parses")
    }

    #[test]
    fn renders_types_as_written() {
        assert_eq!(render(ty("&str")), "&str");
        assert_eq!(render(ty("&mut Vec<i64>")), "&mut Vec<i64>");
        assert_eq!(render(ty("&'a [u8]")), "&'a [u8]");
        assert_eq!(render(ty("std::io::Result<u8>")), "std::io::Result<u8>");
        assert_eq!(
            render(ty("HashMap<String, Vec<(i64, f64)>>")),
            "HashMap<String, Vec<(i64, f64)>>"
        );
        assert_eq!(render(ty("[u8; 4]")), "[u8; 4]");
        assert_eq!(render(ty("impl Fn(i64) -> i64")), "impl Fn(i64) -> i64");
        assert_eq!(render(ty("Option<&'static str>")), "Option<&'static str>");
    }
}
