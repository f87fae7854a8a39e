//! `#[electron]`: turns a function into a task. The function's name becomes a wrapper that,
//! inside a lattice body, records a node and returns a typed `Node<T>`; a module of the same
//! name holds the function as written (`NAME::call`), its static description (`NAME::ELECTRON`)
//! and its registration, so a worker process can find it by its stable path.
//!
//! With `#[lattice]` below it, the function becomes a sublattice: one node whose body builds
//! and returns a child graph at run time (`NAME::lattice` builds it standalone).
//!
//! The module starts with `use super::*;`, so the body as written sees the names of the
//! enclosing module; two things it cannot see: items declared inside a function body around the
//! electron (a `mod` there cannot name them), and an outer item named `call` (or `lattice`),
//! which the generated function of that name shadows.
//!
//! Expansion runs in three steps: [`parse`] reads the attribute and the item, [`validate`]
//! collects every problem, [`generate`] writes the code. This module must not name any crate
//! but `::covalent`.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Block, GenericArgument, ItemFn, LitStr, Meta, PathArguments, ReturnType, Type,
    Visibility, parse_quote,
};

use crate::errors::Report;
use crate::lattice;
use crate::names::{has_name, local, unraw};
use crate::options::{
    ElectronOptions, ExecutorOpt, LatticeOptions, duration_tokens, hook_name, str_slice,
};
use crate::relocate::Deeper;
use crate::signature::{self, ELECTRON, Param};

/// Expands `#[electron(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut report = Report::default();
    let checked = parse(attr, item.clone(), &mut report).and_then(|p| validate(p, &mut report));
    report.emit(item, || checked.as_ref().map(generate))
}

/// The attribute and the item, read but not yet checked.
struct Parsed {
    options: ElectronOptions,
    func: ItemFn,
    /// `#[lattice(...)]` found below `#[electron]`, with its options.
    sublattice: Option<LatticeOptions>,
}

/// Reads the options (bad ones are reported and ignored) and the function (anything else is
/// a hard error).
fn parse(attr: TokenStream, item: TokenStream, report: &mut Report) -> Option<Parsed> {
    let options = ElectronOptions::parse(attr, &mut report.soft);
    let mut func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            report
                .hard
                .push(signature::not_a_function(&item, "#[electron]"));
            return None;
        }
    };
    let mut sublattice = None;
    let mut kept = Vec::with_capacity(func.attrs.len());
    for attr in std::mem::take(&mut func.attrs) {
        if !has_name(&attr, "lattice") {
            kept.push(attr);
            continue;
        }
        if sublattice.is_some() {
            report
                .soft
                .spanned(&attr, "duplicate `#[lattice]` attribute");
            continue;
        }
        let tokens = match &attr.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens.clone(),
            Meta::NameValue(_) => {
                report.soft.spanned(
                    &attr,
                    "`#[lattice]` takes its options in parentheses, as in `#[lattice(fail_fast = true)]`",
                );
                TokenStream::new()
            }
        };
        sublattice = Some(LatticeOptions::parse(tokens, &mut report.soft));
    }
    func.attrs = kept;
    Some(Parsed {
        options,
        func,
        sublattice,
    })
}

/// What a checked electron is made of.
struct Electron {
    options: ElectronOptions,
    /// Attributes that stay on the wrapper (docs, lints, `cfg`, ...).
    attrs: Vec<Attribute>,
    vis: Visibility,
    ident: syn::Ident,
    /// Parameters as written, for the wrapper.
    params: Vec<Param>,
    /// The return type as written (`()` if none), for the wrapper.
    output: Type,
    /// The function as written, moved one module deeper (see `relocate.rs`), for `call`.
    inner: ItemFn,
    /// The parameters of `inner`.
    inner_params: Vec<Param>,
    kind: Kind,
}

enum Kind {
    /// A plain function returning `R`: the node's value is `R`.
    Task,
    /// A function returning `Result<T, E>` (any path ending in `Result`): the node's value is
    /// `T` and an `Err` fails the node. `ok` is `T` as written, when it is written.
    Fallible { ok: Option<Type> },
    /// `#[electron] #[lattice]`.
    Sublattice(LatticeOptions),
}

/// Checks the function's shape (hard errors) and, for a sublattice, the lattice rules (an
/// `async` is reported and dropped; an early exit is a hard error).
fn validate(parsed: Parsed, report: &mut Report) -> Option<Electron> {
    let Parsed {
        options,
        func,
        sublattice,
    } = parsed;
    let params = signature::check(&func.sig, &ELECTRON, &mut report.hard);
    let kind = match sublattice {
        Some(lattice_options) => {
            lattice::check_not_async(&func.sig, &mut report.soft);
            lattice::check_no_early_exit(&func.block, &mut report.hard);
            Kind::Sublattice(lattice_options)
        }
        None => match result_ok_type(&func.sig.output) {
            Some(ok) => Kind::Fallible { ok },
            None => Kind::Task,
        },
    };
    if !report.hard.is_empty() {
        return None;
    }
    let mut inner = func.clone();
    Deeper.visit_item_fn_mut(&mut inner);
    let inner_params = params
        .iter()
        .map(|p| {
            let mut ty = p.ty.clone();
            Deeper.visit_type_mut(&mut ty);
            Param { ty, ..p.clone() }
        })
        .collect();
    Some(Electron {
        options,
        attrs: func.attrs,
        vis: func.vis,
        output: signature::return_type(&func.sig).0,
        ident: func.sig.ident,
        params,
        inner,
        inner_params,
        kind,
    })
}

/// For a return type that is a path ending in `Result` (`Result<T, E>`, `anyhow::Result<T>`,
/// `std::io::Result<T>`), `Some` of its first type argument (`T`, by the convention every
/// `Result` alias follows; `None` when none is written); `None` for any other type.
fn result_ok_type(output: &ReturnType) -> Option<Option<Type>> {
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

fn generate(e: &Electron) -> TokenStream {
    let Electron {
        options,
        attrs,
        vis,
        ident,
        params,
        output,
        inner,
        inner_params,
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
        Kind::Task | Kind::Sublattice(_) => (output.clone(), quote!(ok)),
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
    let block: &Block = &inner.block;
    let args_ident = local("__args");
    // Every `Value` requirement on a user type is checked in `__run` only, spanned on that type:
    // a type that cannot travel between tasks is then reported once, on the user's token.
    let takes = inner_params.iter().enumerate().map(|(i, p)| {
        let (ident, ty, index) = (&p.ident, &p.ty, Literal::usize_unsuffixed(i));
        quote_spanned!(signature::first_span(ty)=> let #ident: #ty = #args_ident.take(#index)?;)
    });
    let takes = quote!(#(#takes)*);
    let (inner_output, output_span) = signature::return_type(&inner.sig);
    let convert = quote_spanned!(output_span=> ::covalent::__private::#convert::<#inner_output>);
    let takes = match result_ok_type(&inner.sig.output) {
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
            let ret = &inner.sig.output;
            let asyncness = &inner.sig.asyncness;
            let function = quote! {
                /// Runs the function as written, as plain Rust (unit tests, other code).
                #(#lints)*
                pub #asyncness fn call(#(#inner_decls),*) #ret #block
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
        Kind::Sublattice(lattice_options) => {
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
                block,
            });
            let function = quote! {
                /// Builds this lattice as a standalone workflow (dispatch it with `covalent::dispatch`).
                #(#lints)*
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
    let digest = source_digest(inner);
    let node_output = match kind {
        Kind::Fallible { .. } => {
            quote!(<#inner_output as ::covalent::__private::ElectronResult>::Ok)
        }
        Kind::Task | Kind::Sublattice(_) => quote!(#inner_output),
    };
    let signature_tys = inner_params.iter().map(|p| &p.ty);
    let signature = quote!(|| ::core::any::TypeId::of::<fn(#(#signature_tys),*) -> #node_output>());
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
                body: #body,
            };

            #run

            ::covalent::__private::inventory::submit! {
                ::covalent::__private::ElectronEntry(&ELECTRON)
            }
        }
    }
}

/// A digest of the function as written (FNV-1a of its tokens), so that a changed body makes a
/// changed electron for redispatch.
fn source_digest(func: &ItemFn) -> String {
    let text = quote!(#func).to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `&[Hook { .. }, ..]` for `call_before` / `call_after` (paths relocated one module down).
fn hooks(paths: &[syn::Path]) -> TokenStream {
    let hooks = paths.iter().map(|path| {
        let name = hook_name(path);
        let mut relocated = path.clone();
        Deeper.visit_path_mut(&mut relocated);
        quote! {
            ::covalent::__private::Hook {
                name: #name,
                run: || ::covalent::__private::hook_result(#relocated()),
            }
        }
    });
    quote!(&[#(#hooks),*])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expansion with all whitespace removed (token spacing differs between `quote!` and
    /// parsed source).
    fn expand_str(attr: &str, item: &str) -> String {
        let attr: TokenStream = attr.parse().expect("attribute tokenizes");
        let item: TokenStream = item.parse().expect("item tokenizes");
        compact(&expand(attr, item).to_string())
    }

    fn compact(code: &str) -> String {
        code.split_whitespace().collect()
    }

    #[test]
    fn plain_electron_expands_to_wrapper_and_module() {
        let out = expand_str(
            "",
            "/// Adds.\npub fn add(mut x: i64, y: i64) -> i64 { x += y; x }",
        );
        let wrapper = compact(
            "#[doc = \" Adds.\"] pub fn add(x: impl ::covalent::IntoNode<i64>, y: impl ::covalent::IntoNode<i64>) -> ::covalent::Node<i64>",
        );
        assert!(out.starts_with(&wrapper), "{out}");
        for part in [
            "::covalent::__private::electron_node(&add::ELECTRON, ::core::option::Option::None, |__b, __id| { ::covalent::__private::arg::<i64, _>(__b, __id, 0u32, x); ::covalent::__private::arg::<i64, _>(__b, __id, 1u32, y); })",
            "pub mod add { #![allow(unused_imports)] use super::*;",
            "pub fn call(mut x: i64, y: i64) -> i64 { x += y; x }",
            "name: \"add\", path: ::core::module_path!(), params: &[\"x\", \"y\"],",
            "signature: || ::core::any::TypeId::of::<fn(i64, i64) -> i64>(), retries: ::core::option::Option::None,",
            "body: ::covalent::__private::Body::Sync(__run),",
            "let x: i64 = __args.take(0)?; let y: i64 = __args.take(1)?; ::covalent::__private::ok::<i64>(self::call(x, y))",
            "::covalent::__private::inventory::submit! { ::covalent::__private::ElectronEntry(&ELECTRON) }",
        ] {
            assert!(out.contains(&compact(part)), "missing {part:?} in {out}");
        }
    }

    #[test]
    fn a_changed_body_changes_the_digest_and_a_same_body_keeps_it() {
        let digest = |body: &str| {
            let out = expand_str("", body);
            out.split("digest:").nth(1).expect("digest")[..20].to_string()
        };
        let one = digest("fn f(x: i64) -> i64 { x + 1 }");
        assert_eq!(one, digest("fn f(x: i64) -> i64 { x + 1 }"));
        assert_ne!(one, digest("fn f(x: i64) -> i64 { x + 2 }"));
    }

    #[test]
    fn attributes_follow_the_code_they_apply_to() {
        let out = expand_str(
            "",
            "/// Docs.\n#[cfg(unix)] #[doc(hidden)] #[allow(unused)] #[expect(clippy::x)] #[inline] fn f() {}",
        );
        let wrapper = compact(
            "#[doc = \" Docs.\"] #[cfg(unix)] #[doc(hidden)] #[allow(unused)] #[inline] fn f() -> ::covalent::Node<()>",
        );
        assert!(out.starts_with(&wrapper), "{out}");
        let module = compact("#[cfg(unix)] #[doc(hidden)] mod f {");
        assert!(out.contains(&module), "{out}");
        let call = compact("#[allow(unused)] #[expect(clippy::x)] pub fn call() {}");
        assert!(out.contains(&call), "{out}");
    }

    #[test]
    fn options_become_the_static_description() {
        let out = expand_str(
            r#"executor = "process", name = "sum", retries = 2, time_limit = "30s",
               deps_bash = "echo hi", call_before = [self::setup, super::check], call_after = log"#,
            "fn add(x: i64) -> i64 { x }",
        );
        for part in [
            "::core::option::Option::Some(::covalent::__private::ExecutorSel::Named(::std::borrow::Cow::Borrowed(\"process\")))",
            "name: \"sum\"",
            "retries: ::core::option::Option::Some(2u32)",
            "time_limit: ::core::option::Option::Some(::core::time::Duration::from_nanos(30000000000u64))",
            "deps_bash: &[\"echo hi\"]",
            "::covalent::__private::Hook { name: \"self::setup\", run: || ::covalent::__private::hook_result(super::setup()), }",
            "::covalent::__private::Hook { name: \"super::check\", run: || ::covalent::__private::hook_result(super::super::check()), }",
            "call_after: &[::covalent::__private::Hook { name: \"log\", run: || ::covalent::__private::hook_result(log()), }]",
        ] {
            assert!(out.contains(&compact(part)), "missing {part:?} in {out}");
        }
        let out = expand_str("executor = pool()", "fn add(x: i64) -> i64 { x }");
        assert!(
            out.contains(&compact(
                "::core::option::Option::Some(::covalent::__private::executor(pool()))"
            )),
            "{out}"
        );
    }

    #[test]
    fn result_electrons_unwrap_their_ok_type() {
        for ret in [
            "Result<i64, String>",
            "anyhow::Result<i64>",
            "std::io::Result<i64>",
        ] {
            let out = expand_str("", &format!("fn f(x: i64) -> {ret} {{ todo!() }}"));
            assert!(out.contains(&compact("-> ::covalent::Node<i64>")), "{out}");
            let check = format!(
                "let _: ::core::marker::PhantomData<i64> = ::core::marker::PhantomData::<<{ret} as ::covalent::__private::ElectronResult>::Ok,>;"
            );
            assert!(out.contains(&compact(&check)), "{out}");
            let convert = format!("::covalent::__private::from_result::<{ret}>(self::call(x))");
            assert!(out.contains(&compact(&convert)), "{out}");
        }
        // An alias written without arguments: the wrapper asks the trait.
        let out = expand_str("", "fn f() -> fmt::Result { Ok(()) }");
        let node =
            "-> ::covalent::Node<<fmt::Result as ::covalent::__private::ElectronResult>::Ok>";
        assert!(out.contains(&compact(node)), "{out}");
        let out = expand_str("", "fn f() {}");
        assert!(
            out.contains(&compact("fn f() -> ::covalent::Node<()>")),
            "{out}"
        );
        assert!(out.contains(&compact("|_, _| {}")), "{out}");
        assert!(
            out.contains(&compact("::covalent::__private::ok::<()>(self::call())")),
            "{out}"
        );
    }

    #[test]
    fn async_electrons_box_their_future() {
        let out = expand_str("", "async fn fetch(url: String) -> String { url }");
        for part in [
            "pub async fn call(url: String) -> String { url }",
            "body: ::covalent::__private::Body::Async(__run)",
            "::core::result::Result::Ok(::covalent::__private::boxed(async move { ::covalent::__private::ok::<String>(self::call(url).await) }))",
        ] {
            assert!(out.contains(&compact(part)), "missing {part:?} in {out}");
        }
    }

    #[test]
    fn lattice_below_makes_a_sublattice() {
        let out = expand_str(
            "retries = 1",
            "#[covalent::lattice(fail_fast = true)] fn inner(x: i64) -> i64 { add(x, 1) }",
        );
        assert!(
            !out.contains("#[covalent::lattice"),
            "the attribute is consumed: {out}"
        );
        for part in [
            "fn inner(x: impl ::covalent::IntoNode<i64>) -> ::covalent::Node<i64>",
            "pub fn lattice(x: i64) -> ::covalent::Lattice<i64>",
            "name: \"inner\", path: ::core::module_path!(), fail_fast: true",
            "{ fn inner(result: impl ::covalent::IntoNode<i64>) -> u32 { ::covalent::__private::lattice_output::<i64, _>(result) } inner(add(x, 1)) }",
            "body: ::covalent::__private::Body::Sublattice(__run)",
            "::core::result::Result::Ok(::covalent::__private::sublattice(self::lattice(x)))",
        ] {
            assert!(out.contains(&compact(part)), "missing {part:?} in {out}");
        }
        let out = expand_str("", "#[lattice] async fn inner() {}");
        assert!(out.contains("cannotbeasync"), "{out}");
    }

    #[test]
    fn rejected_items_are_kept_with_their_errors() {
        let item = "fn f(&self, x: &str) -> i64 { 1 }";
        let out = expand_str("retires = 1", item);
        assert!(out.starts_with(&compact(item)), "{out}");
        for message in [
            "unknown `#[electron]` option `retires`",
            "#[electron] functions cannot take `self`",
            "electron parameter `x` is a reference (`&str`)",
        ] {
            assert!(
                out.contains(&compact(message)),
                "missing {message:?} in {out}"
            );
        }
        let out = expand_str("", "impl Shape for Circle {}");
        assert!(
            out.starts_with(&compact("impl Shape for Circle {}")),
            "{out}"
        );
        assert!(
            out.contains(&compact("#[electron] can only be applied to a function")),
            "{out}"
        );
    }

    #[test]
    fn generated_names_are_hygienic() {
        let out = expand(
            TokenStream::new(),
            "fn f(__args: i64) -> i64 { __args }"
                .parse()
                .expect("tokenizes"),
        );
        let file: syn::File = syn::parse2(out).expect("expansion parses");
        assert_eq!(file.items.len(), 2, "a wrapper function and a module");
    }
}
