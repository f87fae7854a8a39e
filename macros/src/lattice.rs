//! `#[lattice]`: turns a function into a workflow builder. Calling the function runs its body
//! once with a graph builder installed (each electron call records a node) and returns a
//! `covalent::Lattice<R>` ready to dispatch.
//!
//! The body generator is shared with `#[electron] #[lattice]` (sublattices, see
//! `electron/`), which builds the same graph at run time. This module owns the lattice-only
//! checks (no `async`, no early exit from the body) and must not know about electron options.
//!
//! The body is carried as tokens. It is also read as statements when it parses, for the two
//! things that need them: finding early exits, and passing the tail expression on its own so
//! that a tail of the wrong type is underlined by itself. A body that does not parse is rustc's
//! to report: the checks are skipped and the whole body becomes the tail, with no macro error.

use proc_macro2::{Group, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Block, Expr, ExprMacro, LitStr, Stmt, Type};

use crate::errors::{Errors, Report};
use crate::function::{Function, hoist_inner_attrs};
use crate::names::{has_name, local, unraw};
use crate::options::{ExecutorOpt, LatticeOptions};
use crate::signature::{self, LATTICE, Param};

/// Expands `#[lattice(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut report = Report::default();
    let options = LatticeOptions::parse(attr, &mut report.soft);
    let Some(mut func) = Function::read(&item, "#[lattice]", &mut report.hard) else {
        return report.emit(item, || None);
    };
    // A misplaced `#[electron]` is reported and dropped: the lattice is still generated, so
    // its callers type-check (and on a hard error the function is emitted without it, so that
    // `#[electron]` does not report the same problems again).
    func.attrs.retain(|attr| {
        let electron = has_name(attr, "electron");
        if electron {
            report.soft.spanned(
                attr,
                "put #[electron] above #[lattice] to make a sublattice",
            );
        }
        !electron
    });
    check_not_async(&func.sig, &mut report.soft);
    let params = signature::check(&func.sig, &LATTICE, &mut report.hard);
    let body = LatticeBody::read(&func.body);
    body.check_no_early_exit(&mut report.hard);
    let unchanged = func.to_token_stream();
    report.emit(unchanged, || {
        Some(generate(&func, &body, &options, &params))
    })
}

fn generate(
    func: &Function,
    body: &LatticeBody,
    options: &LatticeOptions,
    params: &[Param],
) -> TokenStream {
    let Function {
        attrs, vis, sig, ..
    } = func;
    let ident = &sig.ident;
    let name = options
        .name
        .as_ref()
        .map_or_else(|| unraw(ident), LitStr::value);
    let (output, _) = signature::return_type(sig);
    let inputs = params.iter().map(Param::declaration);
    let path = {
        let suffix = format!("::{}", unraw(ident));
        quote!(::core::concat!(::core::module_path!(), #suffix))
    };
    let inner_attrs = &body.inner_attrs;
    let registration = register(ident, &path, params);
    let body = self::body(&Body {
        ident,
        name: &name,
        path,
        options,
        params,
        output: &output,
        body,
    });
    quote! {
        #(#attrs)*
        #(#inner_attrs)*
        #vis fn #ident(#(#inputs),*) -> ::covalent::Lattice<#output> #body
        #registration
    }
}

/// Registers the lattice under its stable path, with a function that calls it on inputs read
/// back from their record, so another run of the program (a detached or resumed dispatch)
/// can rebuild it. An input type without `Deserialize` still compiles: rebuilding then fails
/// with a message that says so.
fn register(ident: &syn::Ident, path: &TokenStream, params: &[Param]) -> TokenStream {
    let count = params.len();
    let reads = params.iter().enumerate().map(|(i, p)| {
        let (name, ty) = (p.name(), &p.ty);
        quote!((&::covalent::__private::Reader::<#ty>::new()).read(#name, &inputs[#i])?)
    });
    quote! {
        const _: () = {
            #[allow(unused_imports)]
            use ::covalent::__private::{ViaDeserialize as _, ViaNothing as _};
            fn __covalent_rebuild(
                inputs: &[::covalent::__private::serde_json::Value],
            ) -> ::core::result::Result<::covalent::__private::AnyLattice, ::std::string::String> {
                if inputs.len() != #count {
                    return ::core::result::Result::Err(::std::format!(
                        "{} inputs were recorded and the lattice takes {}",
                        inputs.len(),
                        #count
                    ));
                }
                ::core::result::Result::Ok(::covalent::__private::AnyLattice::of(#ident(#(#reads),*)))
            }
            ::covalent::__private::inventory::submit! {
                ::covalent::__private::LatticeEntry { path: #path, rebuild: __covalent_rebuild }
            }
        };
    }
}

/// A lattice body runs once, synchronously, to build the graph: an `async fn` is reported
/// (generation drops the `async`).
pub(crate) fn check_not_async(sig: &syn::Signature, errors: &mut Errors) {
    if let Some(token) = &sig.asyncness {
        errors.spanned(
            token,
            "a lattice body only builds the graph and cannot be async; make its electrons async instead",
        );
    }
}

/// A lattice body, as the generator reads it.
pub(crate) struct LatticeBody {
    /// The body's `#![...]` attributes, as outer attributes for the generated function (the
    /// body moves into a closure, where they are not allowed).
    pub(crate) inner_attrs: Vec<Attribute>,
    /// The body without them, braces included, as written.
    block: Group,
    /// Its statements, when it parses.
    stmts: Option<Vec<Stmt>>,
}

impl LatticeBody {
    /// Reads a body; never fails (see the module docs).
    pub(crate) fn read(body: &Group) -> LatticeBody {
        let (inner_attrs, block) = hoist_inner_attrs(body);
        let stmts = Block::parse_within.parse2(block.stream()).ok();
        LatticeBody {
            inner_attrs,
            block,
            stmts,
        }
    }

    /// A lattice body's last expression is its result: `return` and `?` outside closures,
    /// async blocks and nested items are reported (when the body parses).
    pub(crate) fn check_no_early_exit(&self, errors: &mut Errors) {
        struct EarlyExit<'a>(&'a mut Errors);
        impl VisitMut for EarlyExit<'_> {
            fn visit_expr_return_mut(&mut self, e: &mut syn::ExprReturn) {
                self.0.spanned(
                    e.return_token,
                    "a lattice body cannot `return` early: it runs once to build the graph, and \
                     its last expression is the workflow's result",
                );
                visit_mut::visit_expr_return_mut(self, e);
            }
            fn visit_expr_try_mut(&mut self, e: &mut syn::ExprTry) {
                self.0.spanned(
                    e.question_token,
                    "the `?` operator cannot be used in a lattice body: nothing has run while the \
                     graph is built, so there is no error to propagate; handle errors inside an \
                     electron (an electron returning `Result` fails its node)",
                );
                visit_mut::visit_expr_try_mut(self, e);
            }
            // Closures, async blocks and nested items have their own `return` and `?`.
            fn visit_expr_closure_mut(&mut self, _: &mut syn::ExprClosure) {}
            fn visit_expr_async_mut(&mut self, _: &mut syn::ExprAsync) {}
            fn visit_expr_const_mut(&mut self, _: &mut syn::ExprConst) {}
            fn visit_item_mut(&mut self, _: &mut syn::Item) {}
        }
        let mut visitor = EarlyExit(errors);
        for mut stmt in self.stmts.iter().flatten().cloned() {
            visitor.visit_stmt_mut(&mut stmt);
        }
    }

    /// The statements before the tail and the tail expression (`()` when there is none); a
    /// body that does not parse is all tail.
    fn split_tail(&self) -> (TokenStream, TokenStream) {
        let Some(stmts) = &self.stmts else {
            return (TokenStream::new(), self.block.to_token_stream());
        };
        let mut stmts = stmts.clone();
        let tail = match stmts.pop() {
            Some(Stmt::Expr(e, None)) => Some(e),
            Some(Stmt::Macro(m)) if m.semi_token.is_none() => Some(Expr::Macro(ExprMacro {
                attrs: m.attrs,
                mac: m.mac,
            })),
            Some(other) => {
                stmts.push(other);
                None
            }
            None => None,
        };
        let tail = match tail {
            Some(tail) => tail.into_token_stream(),
            None => quote_spanned!(self.block.span_close()=> ()),
        };
        (quote!(#(#stmts)*), tail)
    }
}

/// What the body of a lattice function is generated from.
pub(crate) struct Body<'a> {
    /// The function's name.
    pub(crate) ident: &'a syn::Ident,
    /// Display name.
    pub(crate) name: &'a str,
    /// `&'static str` expression of the stable path.
    pub(crate) path: TokenStream,
    pub(crate) options: &'a LatticeOptions,
    pub(crate) params: &'a [Param],
    /// `R` in `Lattice<R>`.
    pub(crate) output: &'a Type,
    /// The user's body.
    pub(crate) body: &'a LatticeBody,
}

/// The body of a function returning `::covalent::Lattice<R>`: records the inputs and builds the
/// graph by running the user's statements.
pub(crate) fn body(b: &Body<'_>) -> TokenStream {
    let Body {
        ident,
        name,
        path,
        options,
        params,
        output,
        body,
    } = b;
    let inputs = local("__covalent_inputs");
    let asserts = params.iter().map(|p| {
        let ty = &p.ty;
        quote_spanned!(signature::first_span(ty)=> ::covalent::__private::assert_input::<#ty>();)
    });
    // Spanned like the assertion above so that a non-serializable input is reported once.
    let records = params.iter().map(|p| {
        let (ident, name, ty) = (&p.ident, p.name(), &p.ty);
        quote_spanned!(signature::first_span(ty)=> ::covalent::__private::input::<#ty>(#name, &#ident))
    });
    let fail_fast = options.fail_fast;
    let executor = ExecutorOpt::tokens(options.executor.as_ref());

    let (stmts, tail) = body.split_tail();
    // The tail goes through a local function with an `impl IntoNode<R>` parameter, named like
    // the lattice: rustc then underlines the whole tail when it does not fit `R` (an explicit
    // `lattice_output::<R, _>` would blame the `_`) and blames "a bound in `workflow`" on the
    // return type. The inner block keeps that name from shadowing anything in the statements
    // (a body that does not parse is all tail and sees it, but rustc reports an error there).
    let output_span = signature::first_span(output);
    let mut result_fn = (*ident).clone();
    result_fn.set_span(output_span);
    let bound = quote_spanned!(output_span=> impl ::covalent::IntoNode<#output>);
    let result = quote! {{
        fn #result_fn(result: #bound) -> u32 {
            ::covalent::__private::lattice_output::<#output, _>(result)
        }
        #result_fn(#tail)
    }};
    quote! {{
        #(#asserts)*
        static __COVALENT_LATTICE: ::covalent::__private::LatticeDef =
            ::covalent::__private::LatticeDef { name: #name, path: #path, fail_fast: #fail_fast };
        let #inputs = ::std::vec![#(#records),*];
        ::covalent::__private::build_lattice::<#output>(
            &__COVALENT_LATTICE,
            #executor,
            #inputs,
            move || {
                #stmts
                #result
            },
        )
    }}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(item: &str) -> Vec<String> {
        let func: Function = syn::parse_str(item).expect("test item parses");
        let mut errors = Errors::default();
        check_not_async(&func.sig, &mut errors);
        LatticeBody::read(&func.body).check_no_early_exit(&mut errors);
        errors
            .into_error()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    fn expand_str(attr: &str, item: &str) -> String {
        let attr: TokenStream = attr.parse().expect("attribute tokenizes");
        let item: TokenStream = item.parse().expect("item tokenizes");
        expand(attr, item).to_string()
    }

    #[test]
    fn async_lattice_is_rejected() {
        assert_eq!(
            errors_of("async fn w() {}"),
            [
                "a lattice body only builds the graph and cannot be async; make its electrons async instead"
            ]
        );
    }

    #[test]
    fn early_exits_are_rejected_outside_closures() {
        let errors = errors_of(
            "fn w(x: i64) -> i64 { if x > 0 { return add(x, 1); } let v = parse(s)?; \
             let f = |s: &str| -> Result<i64, E> { Ok(s.parse()?) }; add(x, v) }",
        );
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("a lattice body cannot `return` early"));
        assert!(errors[1].starts_with("the `?` operator cannot be used in a lattice body"));
    }

    #[test]
    fn electron_below_lattice_is_reported_and_dropped() {
        let out = expand_str("", "#[electron] fn inner(x: i64) -> i64 { add(x, 1) }");
        assert!(
            out.contains("put #[electron] above #[lattice] to make a sublattice"),
            "{out}"
        );
        assert!(
            out.starts_with("fn inner (x : i64) -> :: covalent :: Lattice < i64 >"),
            "the lattice is generated without the attribute: {out}"
        );
    }

    #[test]
    fn shape_errors_keep_the_function_unchanged() {
        let out = expand_str("name = 3", "async fn w(x: &str) -> i64 { 1 }");
        assert!(
            out.starts_with("async fn w (x : & str) -> i64 { 1 }"),
            "{out}"
        );
        for message in [
            "`name` takes a string literal",
            "cannot be async",
            "lattice parameter `x` is a reference",
        ] {
            assert!(out.contains(message), "missing {message:?} in {out}");
        }
    }

    #[test]
    fn non_function_is_rejected_and_kept() {
        let out = expand_str("", "struct Point { x: i64 }");
        assert!(out.starts_with("struct Point { x : i64 }"), "{out}");
        assert!(
            out.contains("#[lattice] can only be applied to a function"),
            "{out}"
        );
    }

    #[test]
    fn body_wraps_statements_and_tail() {
        let out = expand_str(
            "fail_fast = true",
            "pub fn workflow(x: i64, mut y: i64) -> i64 { y += 1; let r = add(x, y); mul(r, 2) }",
        );
        assert!(
            out.starts_with(
                "pub fn workflow (x : i64 , mut y : i64) -> :: covalent :: Lattice < i64 >"
            ),
            "{out}"
        );
        assert!(out.contains("fail_fast : true"), "{out}");
        assert!(
            out.contains(":: core :: concat ! (:: core :: module_path ! () , \"::workflow\")"),
            "{out}"
        );
        assert!(out.contains("input :: < i64 > (\"y\" , & y)"), "{out}");
        assert!(
            out.contains(
                "move || { y += 1 ; let r = add (x , y) ; { fn workflow (result : impl :: covalent :: IntoNode < i64 >) -> u32 { :: covalent :: __private :: lattice_output :: < i64 , _ > (result) } workflow (mul (r , 2)) } }"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_body_that_does_not_parse_is_all_tail_and_goes_unchecked() {
        let out = expand_str(
            "",
            "fn w(x: i64) -> i64 { let y = add(x, 1) add(x, 2); return y? }",
        );
        assert!(!out.contains("compile_error"), "no macro error: {out}");
        assert!(
            out.contains("move || { { fn w (result : impl :: covalent :: IntoNode < i64 >) -> u32"),
            "{out}"
        );
        assert!(
            out.contains("w ({ let y = add (x , 1) add (x , 2) ; return y ? }) } }"),
            "{out}"
        );
    }

    #[test]
    fn inner_attributes_go_on_the_lattice_function() {
        let out = expand_str("", "/// Docs.\nfn w() { #![allow(unused)] side(); }");
        assert!(
            out.starts_with(
                "# [doc = \" Docs.\"] # [allow (unused)] fn w () -> :: covalent :: Lattice < () >"
            ),
            "{out}"
        );
        assert!(out.contains("move || { side () ; {"), "{out}");
    }

    #[test]
    fn missing_tail_and_return_type_mean_unit() {
        let out = expand_str("", "fn w() { side(); }");
        assert!(out.contains("-> :: covalent :: Lattice < () >"), "{out}");
        assert!(out.contains("w (()) } }"), "{out}");
    }
}
