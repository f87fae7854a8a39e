//! The literal forms of option values in generated code: the executor selection, a time
//! limit as a `Duration`, hook names and string slices.
//!
//! It receives values that are already checked; it must not parse or validate options, nor
//! report errors.

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;
use syn::{LitStr, Path};

use crate::errors::render;
use crate::options::values::ExecutorOpt;

impl ExecutorOpt {
    /// The `Option<ExecutorSel>` expression for an optional executor.
    pub(crate) fn tokens(executor: Option<&ExecutorOpt>) -> TokenStream {
        match executor {
            None => quote!(::core::option::Option::None),
            Some(ExecutorOpt::Named(name)) => quote! {
                ::core::option::Option::Some(::covalent::__private::ExecutorSel::Named(
                    ::std::borrow::Cow::Borrowed(#name)
                ))
            },
            Some(ExecutorOpt::Expr(expr)) => quote! {
                ::core::option::Option::Some(::covalent::__private::executor(#expr))
            },
        }
    }
}

/// The `Duration` expression for a parsed time limit.
pub(crate) fn duration_tokens(duration: Duration) -> TokenStream {
    // `parse_duration` guarantees the value fits in `u64` nanoseconds.
    let nanos = Literal::u64_suffixed(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    quote!(::core::time::Duration::from_nanos(#nanos))
}

/// The string a hook is known by in messages: its path as written.
pub(crate) fn hook_name(path: &Path) -> LitStr {
    LitStr::new(&render(path), Span::call_site())
}

/// A list of string literals as a `&'static [&'static str]` expression.
pub(crate) fn str_slice(items: &[LitStr]) -> TokenStream {
    quote!(&[#(#items),*])
}
