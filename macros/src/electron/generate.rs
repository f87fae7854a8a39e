//! Writing an electron's code from its checked description: the wrapper (which records a node
//! when called inside a lattice body), and the module of the same name with `call` (or
//! `lattice`), the static `ELECTRON` description, the `__run` entry the engine calls and the
//! registration. The user's body is copied as tokens; only a sublattice's body goes through the
//! lattice generator.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Attribute, LitStr, Meta, parse_quote};

use super::validate::result_ok_type;
use super::{Electron, Kind};
use crate::lattice;
use crate::names::{local, unraw};
use crate::options::{ExecutorOpt, duration_tokens, hook_name, str_slice};
use crate::relocate::deeper_node;
use crate::signature::{self, Param};

/// Where an attribute written on the function goes besides (or instead of) the wrapper.
#[derive(PartialEq)]
enum AttrPlace {
    /// Docs, `inline`, `deprecated`, ...: the wrapper only.
    Wrapper,
    /// `cfg`, `doc(hidden)`: the wrapper and the module.
    WrapperAndModule,
    /// `allow`, `warn`, `deny`, `forbid`: the wrapper and `call` (the body as written).
    WrapperAndCall,
    /// `expect`: `call` only, where the lints of the body fire (an expectation copied onto the
    /// wrapper would go unfulfilled).
    Call,
}

fn place(attr: &Attribute) -> AttrPlace {
    let path = attr.path();
    let doc_hidden = path.is_ident("doc")
        && matches!(&attr.meta, Meta::List(list) if list.tokens.to_string() == "hidden");
    if path.is_ident("cfg") || doc_hidden {
        AttrPlace::WrapperAndModule
    } else if ["allow", "warn", "deny", "forbid"]
        .iter()
        .any(|lint| path.is_ident(lint))
    {
        AttrPlace::WrapperAndCall
    } else if path.is_ident("expect") {
        AttrPlace::Call
    } else {
        AttrPlace::Wrapper
    }
}

/// The wrapper and the module of a checked electron.
pub(super) fn generate(e: &Electron) -> TokenStream {
    let Electron {
        options,
        attrs,
        vis,
        ident,
        params,
        output,
        inner_sig,
        inner_body,
        inner_params,
        digest,
        kind,
    } = e;
    // The node's value type. For `Result<T, E>` the wrapper names `T` as written rather than
    // `<R as ElectronResult>::Ok`, so that an `E` without `Display` is reported once (in
    // `__run`, where the two are also checked to agree) instead of in both functions.
    let (wrapper_output, convert) = match kind {
        Kind::Fallible { ok: Some(ok) } => (ok.clone(), quote!(from_result)),
        Kind::Fallible { ok: None } => (
            parse_quote!(<#output as ::covalent::__private::ElectronResult>::Ok),
            quote!(from_result),
        ),
        Kind::Task | Kind::Sublattice(..) => (output.clone(), quote!(ok)),
    };

    // ---- the wrapper ----------------------------------------------------------------------
    let (b, id) = (local("__b"), local("__id"));
    let wrapper_params = params.iter().map(|p| {
        // Spanned on the type, so a mismatched argument blames "a bound in `NAME`" on it.
        let (ident, ty) = (&p.ident, &p.ty);
        let bound = quote_spanned!(signature::first_span(ty)=> impl ::covalent::IntoNode<#ty>);
        quote!(#ident: #bound)
    });
    let args = params.iter().enumerate().map(|(i, p)| {
        let (ident, ty) = (&p.ident, &p.ty);
        let slot = Literal::u32_suffixed(u32::try_from(i).unwrap_or(u32::MAX));
        quote!(::covalent::__private::arg::<#ty, _>(#b, #id, #slot, #ident);)
    });
    let closure = if params.is_empty() {
        quote!(|_, _| {})
    } else {
        quote!(|#b, #id| { #(#args)* })
    };
    let executor = ExecutorOpt::tokens(options.executor.as_ref());
    let wrapper_attrs = attrs.iter().filter(|a| place(a) != AttrPlace::Call);
    let wrapper = quote! {
        #(#wrapper_attrs)*
        #vis fn #ident(#(#wrapper_params),*) -> ::covalent::Node<#wrapper_output> {
            ::covalent::__private::electron_node(&#ident::ELECTRON, #executor, #closure)
        }
    };

    // ---- the module -----------------------------------------------------------------------
    let name = unraw(ident);
    let display = options
        .name
        .as_ref()
        .map_or_else(|| name.clone(), LitStr::value);
    let module_attrs = attrs
        .iter()
        .filter(|a| place(a) == AttrPlace::WrapperAndModule);
    let lints: Vec<&Attribute> = attrs
        .iter()
        .filter(|a| matches!(place(a), AttrPlace::WrapperAndCall | AttrPlace::Call))
        .collect();
    let inner_idents: Vec<&syn::Ident> = inner_params.iter().map(|p| &p.ident).collect();
    let inner_decls: Vec<TokenStream> = inner_params.iter().map(Param::declaration).collect();
    let args_ident = local("__args");
    // Every `Value` requirement on a user type is checked in `__run` only, spanned on that type:
    // a type that cannot travel between tasks is then reported once, on the user's token.
    let takes = inner_params.iter().enumerate().map(|(i, p)| {
        let (ident, ty, index) = (&p.ident, &p.ty, Literal::usize_unsuffixed(i));
        quote_spanned!(signature::first_span(ty)=> let #ident: #ty = #args_ident.take(#index)?;)
    });
    let takes = quote!(#(#takes)*);
    let (inner_output, output_span) = signature::return_type(inner_sig);
    let convert = quote_spanned!(output_span=> ::covalent::__private::#convert::<#inner_output>);
    let takes = match result_ok_type(&inner_sig.output) {
        Some(Some(ok)) if matches!(kind, Kind::Fallible { .. }) => quote_spanned! {output_span=>
            #takes
            let _: ::core::marker::PhantomData<#ok> = ::core::marker::PhantomData::<
                <#inner_output as ::covalent::__private::ElectronResult>::Ok,
            >;
        },
        _ => takes,
    };

    let (function, body, run) = match kind {
        Kind::Task | Kind::Fallible { .. } => {
            let ret = &inner_sig.output;
            let asyncness = &inner_sig.asyncness;
            let function = quote! {
                /// Runs the function as written, as plain Rust (unit tests, other code).
                #(#lints)*
                pub #asyncness fn call(#(#inner_decls),*) #ret #inner_body
            };
            if asyncness.is_some() {
                let run = quote! {
                    fn __run(
                        #args_ident: &mut ::covalent::__private::Args,
                    ) -> ::core::result::Result<::covalent::__private::TaskFuture, ::covalent::__private::TaskError> {
                        #takes
                        ::core::result::Result::Ok(::covalent::__private::boxed(async move {
                            #convert(self::call(#(#inner_idents),*).await)
                        }))
                    }
                };
                (
                    function,
                    quote!(::covalent::__private::Body::Async(__run)),
                    run,
                )
            } else {
                let run = quote! {
                    fn __run(
                        #args_ident: &mut ::covalent::__private::Args,
                    ) -> ::core::result::Result<::covalent::__private::Output, ::covalent::__private::TaskError> {
                        #takes
                        #convert(self::call(#(#inner_idents),*))
                    }
                };
                (
                    function,
                    quote!(::covalent::__private::Body::Sync(__run)),
                    run,
                )
            }
        }
        Kind::Sublattice(lattice_options, body) => {
            let lattice_name = lattice_options
                .name
                .as_ref()
                .map_or_else(|| display.clone(), LitStr::value);
            let lattice_body = lattice::body(&lattice::Body {
                ident,
                name: &lattice_name,
                path: quote!(::core::module_path!()),
                options: lattice_options,
                params: inner_params,
                output: &inner_output,
                body,
            });
            let inner_attrs = &body.inner_attrs;
            let function = quote! {
                /// Builds this lattice as a standalone workflow (dispatch it with `covalent::dispatch`).
                #(#lints)*
                #(#inner_attrs)*
                pub fn lattice(#(#inner_decls),*) -> ::covalent::Lattice<#inner_output> #lattice_body
            };
            let run = quote! {
                fn __run(
                    #args_ident: &mut ::covalent::__private::Args,
                ) -> ::core::result::Result<::covalent::__private::SubGraph, ::covalent::__private::TaskError> {
                    #takes
                    ::core::result::Result::Ok(::covalent::__private::sublattice(self::lattice(#(#inner_idents),*)))
                }
            };
            (
                function,
                quote!(::covalent::__private::Body::Sublattice(__run)),
                run,
            )
        }
    };

    let params_names = params.iter().map(Param::name);
    let retries = match options.retries {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let time_limit = match options.time_limit {
        Some(d) => {
            let d = duration_tokens(d);
            quote!(::core::option::Option::Some(#d))
        }
        None => quote!(::core::option::Option::None),
    };
    let deps_bash = str_slice(&options.deps_bash);
    let node_output = match kind {
        Kind::Fallible { .. } => {
            quote!(<#inner_output as ::covalent::__private::ElectronResult>::Ok)
        }
        Kind::Task | Kind::Sublattice(..) => quote!(#inner_output),
    };
    let signature_tys = inner_params.iter().map(|p| &p.ty);
    let signature = quote!(|| ::core::any::TypeId::of::<fn(#(#signature_tys),*) -> #node_output>());
    let files = options.files.iter().map(|f| {
        let (from, to) = (&f.from, &f.to);
        if f.before {
            quote!(::covalent::files::stage_in(#from, #to))
        } else {
            quote!(::covalent::files::stage_out(#from, #to))
        }
    });
    // Whether the body may work with files (a `File`, the task's directory): such a task
    // always runs in a files scope, even the first of its program on the `local` executor.
    let uses_files = mentions_files(quote!(#inner_sig #inner_body));
    let pool = match &options.pool {
        Some(p) => quote!(::core::option::Option::Some(#p)),
        None => quote!(::core::option::Option::None),
    };
    let needs = {
        let cpus = options.cpus.unwrap_or(0);
        let memory = options.memory.unwrap_or(0);
        let gpus = options.gpus.unwrap_or(0);
        let custom = options.resources.iter().map(|(n, v)| quote!((#n, #v)));
        quote!(::covalent::resources::Needs {
            cpus: #cpus,
            memory: #memory,
            gpus: #gpus,
            custom: &[#(#custom),*],
        })
    };
    let call_before = hooks(&options.call_before);
    let call_after = hooks(&options.call_after);
    let mod_doc = if ident.to_string().starts_with("r#") {
        format!("Plain-Rust form and registration of the electron `{name}`.")
    } else {
        format!("Plain-Rust form and registration of the electron [`{name}`](fn@{name}).")
    };

    quote! {
        #wrapper

        #[doc = #mod_doc]
        #(#module_attrs)*
        #vis mod #ident {
            #![allow(unused_imports)]
            use super::*;

            #function

            /// The electron's definition (for `Lattice::replace_electron`).
            pub fn electron() -> &'static ::covalent::ElectronDef {
                &ELECTRON
            }

            #[doc(hidden)]
            pub static ELECTRON: ::covalent::__private::ElectronDef = ::covalent::__private::ElectronDef {
                name: #display,
                path: ::core::module_path!(),
                params: &[#(#params_names),*],
                digest: #digest,
                signature: #signature,
                retries: #retries,
                time_limit: #time_limit,
                deps_bash: #deps_bash,
                call_before: #call_before,
                call_after: #call_after,
                files: &[#(#files),*],
                uses_files: #uses_files,
                pool: #pool,
                needs: #needs,
                body: #body,
            };

            #run

            ::covalent::__private::inventory::submit! {
                ::covalent::__private::ElectronEntry(&ELECTRON)
            }
        }
    }
}

/// Whether tokens name `File`, `task_dir` or `files` anywhere.
fn mentions_files(ts: TokenStream) -> bool {
    ts.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == "File" || i == "task_dir" || i == "files",
        proc_macro2::TokenTree::Group(g) => mentions_files(g.stream()),
        _ => false,
    })
}

/// `&[Hook { .. }, ..]` for `call_before` / `call_after` (paths relocated one module down).
fn hooks(paths: &[syn::Path]) -> TokenStream {
    let hooks = paths.iter().map(|path| {
        let name = hook_name(path);
        let relocated = deeper_node(path);
        quote! {
            ::covalent::__private::Hook {
                name: #name,
                run: || ::covalent::__private::hook_result(#relocated()),
            }
        }
    });
    quote!(&[#(#hooks),*])
}
