//! `#[covalent::main]` and `#[covalent::test]`: run an `async fn` to completion on covalent's
//! multi-threaded runtime (through `::covalent::__private::main` / `test`, which also serve as
//! the worker entry when an executor re-runs the program).
//!
//! This module only moves the body, as unparsed tokens, into an `async move` block (hoisting
//! its inner attributes onto the function); it knows nothing about electrons or lattices.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use crate::errors::Report;
use crate::function::{Function, hoist_inner_attrs};
use crate::names::has_name;

/// Which entry point is expanded.
#[derive(Clone, Copy)]
enum Entry {
    Main,
    Test,
}

impl Entry {
    fn attr(self) -> &'static str {
        match self {
            Entry::Main => "#[covalent::main]",
            Entry::Test => "#[covalent::test]",
        }
    }
}

/// Expands `#[covalent::main]`.
pub(crate) fn expand_main(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, Entry::Main)
}

/// Expands `#[covalent::test]`.
pub(crate) fn expand_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr, item, Entry::Test)
}

/// Options, a missing `async` and a duplicate `#[test]` are reported and worked around;
/// parameters and generics leave the function unchanged.
fn expand(attr: TokenStream, item: TokenStream, entry: Entry) -> TokenStream {
    let name = entry.attr();
    let mut report = Report::default();
    if !attr.is_empty() {
        report
            .soft
            .spanned(&attr, format!("{name} takes no options"));
    }
    let Some(mut func) = Function::read(&item, name, &mut report.hard) else {
        return report.emit(item, || None);
    };
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        let message = match entry {
            Entry::Main => format!("{name} goes on `async fn main`"),
            Entry::Test => format!("{name} goes on an `async fn`"),
        };
        report.soft.spanned(sig.fn_token, message);
    }
    if !sig.inputs.is_empty() {
        let message = match entry {
            Entry::Main => format!(
                "{name} functions take no parameters; read command-line arguments with \
                 `std::env::args()`"
            ),
            Entry::Test => format!("{name} functions take no parameters"),
        };
        report.hard.spanned(&sig.inputs, message);
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        report
            .hard
            .spanned(&sig.generics, format!("{name} functions cannot be generic"));
    }
    if let Entry::Test = entry {
        func.attrs.retain(|attr| {
            let test = has_name(attr, "test");
            if test {
                report.soft.spanned(
                    attr,
                    format!("{name} already makes the function a test; remove this attribute"),
                );
            }
            !test
        });
    }
    let unchanged = func.to_token_stream();
    report.emit(unchanged, || Some(generate(&func, entry)))
}

fn generate(func: &Function, entry: Entry) -> TokenStream {
    let Function {
        attrs,
        vis,
        sig,
        body,
    } = func;
    let (ident, output) = (&sig.ident, &sig.output);
    let (inner_attrs, block) = hoist_inner_attrs(body);
    match entry {
        Entry::Main => quote! {
            #(#attrs)*
            #(#inner_attrs)*
            #vis fn #ident() #output {
                ::covalent::__private::main(async move #block)
            }
        },
        Entry::Test => quote! {
            #[::core::prelude::v1::test]
            #(#attrs)*
            #(#inner_attrs)*
            #vis fn #ident() #output {
                ::covalent::__private::test(async move #block)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(entry: Entry, attr: &str, item: &str) -> String {
        let attr: TokenStream = attr.parse().expect("attribute tokenizes");
        let item: TokenStream = item.parse().expect("item tokenizes");
        expand(attr, item, entry).to_string()
    }

    #[test]
    fn main_runs_its_body_in_an_async_block() {
        let out = expand_str(
            Entry::Main,
            "",
            "async fn main() -> anyhow::Result<()> { run().await?; Ok(()) }",
        );
        let expected: TokenStream =
            "fn main() -> anyhow::Result<()> { ::covalent::__private::main(async move { run().await?; Ok(()) }) }"
                .parse()
                .expect("expected code tokenizes");
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn inner_attributes_go_on_the_function_and_bodies_need_not_parse() {
        let out = expand_str(
            Entry::Main,
            "",
            "async fn main() { #![allow(unused)] let x = 1 +; }",
        );
        let expected: TokenStream =
            "#[allow(unused)] fn main() { ::covalent::__private::main(async move { let x = 1 +; }) }"
                .parse()
                .expect("expected code tokenizes");
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn test_adds_the_test_attribute_first() {
        let out = expand_str(Entry::Test, "", "#[ignore] async fn t() { work().await }");
        assert!(
            out.starts_with(
                "# [:: core :: prelude :: v1 :: test] # [ignore] fn t () { :: covalent :: __private :: test (async move"
            ),
            "{out}"
        );
    }

    #[test]
    fn every_misuse_is_reported() {
        let out = expand_str(Entry::Main, "flavor = \"x\"", "fn main<T>(x: T) {}");
        for message in [
            "#[covalent::main] takes no options",
            "#[covalent::main] goes on `async fn main`",
            "#[covalent::main] functions take no parameters",
            "#[covalent::main] functions cannot be generic",
        ] {
            assert!(out.contains(message), "{message:?} missing from {out}");
        }
        assert!(
            out.starts_with("fn main < T > (x : T) { }"),
            "the function is kept: {out}"
        );
        let out = expand_str(Entry::Test, "", "#[test] async fn t() {}");
        assert!(
            out.contains("#[covalent::test] already makes the function a test"),
            "{out}"
        );
    }
}
