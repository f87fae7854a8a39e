//! Function signatures: checks that a function under `#[electron]` or `#[lattice]` has a shape
//! the engine can call (a free, concrete, safe function with named, owned parameters) and
//! extracts its parameters.
//!
//! Every rejection names the offending parameter or keyword, says why in one sentence and is
//! spanned on that token. This module does not look at attribute options or generate code.

use proc_macro2::Span;
use quote::ToTokens;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Attribute, FnArg, Ident, Pat, PatIdent, ReturnType, Signature, Token, Type, TypeReference,
    parse_quote,
};

use crate::errors::{Errors, render};

/// Which macro is checking, for the wording of its messages.
pub(crate) struct Who {
    /// `#[electron]`.
    attr: &'static str,
    /// `electron`.
    noun: &'static str,
    /// Why `self` makes no sense here.
    free_fn: &'static str,
    /// Why inputs must be owned.
    owned: &'static str,
    /// Why types must be concrete.
    concrete: &'static str,
    /// Why the output type must be nameable.
    output: &'static str,
}

pub(crate) const ELECTRON: Who = Who {
    attr: "#[electron]",
    noun: "electron",
    free_fn: "an electron is a free function whose inputs travel between tasks",
    owned: "electrons take owned values, which are cloned or serialized between tasks",
    concrete: "an electron is one concrete function that a worker process finds by name",
    output: "its output is stored and sent to the tasks that use it",
};

pub(crate) const LATTICE: Who = Who {
    attr: "#[lattice]",
    noun: "lattice",
    free_fn: "a lattice is a free function whose inputs are recorded with each dispatch",
    owned: "a lattice records its inputs with each dispatch and moves them into the graph",
    concrete: "a lattice records its inputs and result with each dispatch, so their types must be concrete",
    output: "its result is stored with each dispatch",
};

/// One parameter, as written.
#[derive(Clone)]
pub(crate) struct Param {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) mutability: Option<Token![mut]>,
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

impl Param {
    /// The parameter's name without any `r#` prefix (edge labels, input names).
    pub(crate) fn name(&self) -> String {
        crate::names::unraw(&self.ident)
    }

    /// The parameter as declared: `#[attr] mut x: T`.
    pub(crate) fn declaration(&self) -> proc_macro2::TokenStream {
        let Param {
            attrs,
            mutability,
            ident,
            ty,
        } = self;
        quote::quote!(#(#attrs)* #mutability #ident: #ty)
    }
}

/// Checks `sig` for `who` and returns its parameters (those that could be read; errors are
/// recorded for the others).
pub(crate) fn check(sig: &Signature, who: &Who, errors: &mut Errors) -> Vec<Param> {
    let Who { attr, noun, .. } = who;
    if let Some(token) = &sig.constness {
        errors.spanned(
            token,
            format!(
                "{attr} functions cannot be `const`: {noun}s run when a workflow is dispatched, \
                 not at compile time"
            ),
        );
    }
    if let syn::Safety::Unsafe(token) = &sig.safety {
        errors.spanned(
            token,
            format!(
                "{attr} functions cannot be `unsafe`: the engine calls them and cannot uphold a \
                 safety contract; keep the function safe and use `unsafe` blocks inside"
            ),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            format!(
                "{attr} functions cannot declare an ABI (`{}`): the engine calls them as Rust \
                 functions",
                render(abi)
            ),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            format!("{attr} functions cannot be variadic; take a `Vec` instead"),
        );
    }
    let generic_message = format!(
        "{attr} functions cannot be generic: {}; use concrete types",
        who.concrete
    );
    if !sig.generics.params.is_empty() {
        errors.spanned(&sig.generics, &generic_message);
    } else if let Some(clause) = &sig.generics.where_clause {
        errors.spanned(clause, &generic_message);
    }

    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver.self_token,
                format!(
                    "{attr} functions cannot take `self`: {}; move the method body into a free \
                     function",
                    who.free_fn
                ),
            ),
            FnArg::Typed(typed) => {
                let ident = match &*typed.pat {
                    Pat::Ident(PatIdent {
                        by_ref: None,
                        subpat: None,
                        mutability,
                        ident,
                        ..
                    }) => Some((*mutability, ident.clone())),
                    Pat::Wild(wild) => {
                        errors.spanned(
                            wild,
                            format!(
                                "{noun} parameters need a name, such as `x: i64`; the names label \
                                 the graph's edges and the recorded inputs"
                            ),
                        );
                        None
                    }
                    other => {
                        errors.spanned(
                            other,
                            format!(
                                "{noun} parameters must be plain names such as `x: i64`, not \
                                 `{}`; destructure the value inside the body instead",
                                render(other)
                            ),
                        );
                        None
                    }
                };
                let name = ident
                    .as_ref()
                    .map(|(_, i)| i.to_string())
                    .unwrap_or_else(|| render(&typed.pat));
                let type_ok = check_param_type(&name, &typed.ty, who, errors);
                if let (Some((mutability, ident)), true) = (ident, type_ok) {
                    params.push(Param {
                        attrs: typed.attrs.clone(),
                        mutability,
                        ident,
                        ty: (*typed.ty).clone(),
                    });
                }
            }
        }
    }

    if let ReturnType::Type(_, ty) = &sig.output
        && let Some(found) = find(ty, |t| matches!(t, Type::ImplTrait(_)))
    {
        errors.spanned(
            &found,
            format!(
                "{noun} functions cannot return `impl Trait` (`{}`): {}; return a concrete type",
                render(&found),
                who.output
            ),
        );
    }
    params
}

/// Checks one parameter type; returns whether it was accepted.
fn check_param_type(name: &str, ty: &Type, who: &Who, errors: &mut Errors) -> bool {
    let noun = who.noun;
    if let Type::Reference(reference) = ty {
        errors.spanned(
            reference,
            format!(
                "{noun} parameter `{name}` is a reference (`{}`); {}: use an owned type such as `{}`",
                render(ty),
                who.owned,
                render(owned(ty))
            ),
        );
        return false;
    }
    if let Some(found) = find(ty, |t| matches!(t, Type::Reference(_))) {
        errors.spanned(
            &found,
            format!(
                "{noun} parameter `{name}` holds a reference (`{}`); {}: use an owned type such as `{}`",
                render(ty),
                who.owned,
                render(owned(ty))
            ),
        );
        return false;
    }
    if let Some(found) = find(ty, |t| matches!(t, Type::ImplTrait(_))) {
        errors.spanned(
            &found,
            format!(
                "{noun} parameter `{name}` has an `impl Trait` type (`{}`): {}; use a concrete type",
                render(ty),
                who.concrete
            ),
        );
        return false;
    }
    true
}

/// The first type inside `ty` (itself included) that satisfies `pred`.
fn find(ty: &Type, pred: fn(&Type) -> bool) -> Option<Type> {
    struct Finder {
        pred: fn(&Type) -> bool,
        found: Option<Type>,
    }
    impl VisitMut for Finder {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if self.found.is_some() {
                return;
            }
            if (self.pred)(ty) {
                self.found = Some(ty.clone());
                return;
            }
            visit_mut::visit_type_mut(self, ty);
        }
    }
    let mut finder = Finder { pred, found: None };
    finder.visit_type_mut(&mut ty.clone());
    finder.found
}

/// The owned counterpart of a type with references: `&str` → `String`, `&[T]` → `Vec<T>`,
/// `&Path` → `PathBuf`, `&T` → `T`.
fn owned(ty: &Type) -> Type {
    struct Owner;
    impl VisitMut for Owner {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::Reference(TypeReference { elem, .. }) = ty {
                let mut inner = (**elem).clone();
                self.visit_type_mut(&mut inner);
                *ty = match &inner {
                    Type::Slice(slice) => {
                        let elem = &slice.elem;
                        parse_quote!(Vec<#elem>)
                    }
                    Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                        let last = p.path.segments[0].ident.to_string();
                        match last.as_str() {
                            "str" => parse_quote!(String),
                            "Path" => parse_quote!(PathBuf),
                            "OsStr" => parse_quote!(OsString),
                            "CStr" => parse_quote!(CString),
                            _ => inner,
                        }
                    }
                    _ => inner,
                };
                return;
            }
            visit_mut::visit_type_mut(self, ty);
        }
    }
    let mut ty = ty.clone();
    Owner.visit_type_mut(&mut ty);
    ty
}

/// The type a function returns, `()` when it declares none, and the span to blame for it.
pub(crate) fn return_type(sig: &Signature) -> (Type, Span) {
    match &sig.output {
        ReturnType::Type(_, ty) => ((**ty).clone(), first_span(ty)),
        ReturnType::Default => (parse_quote!(()), sig.ident.span()),
    }
}

/// The span of the first token of `tokens` (stable proc-macro spans cannot be joined).
pub(crate) fn first_span(tokens: impl ToTokens) -> Span {
    tokens
        .into_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(sig: &str, who: &Who) -> (Vec<String>, usize) {
        let sig: Signature = syn::parse_str(sig).expect("test signature parses");
        let mut errors = Errors::default();
        let params = check(&sig, who, &mut errors);
        let messages = errors
            .into_error()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        (messages, params.len())
    }

    #[test]
    fn plain_signature_is_accepted() {
        let (errors, n) = messages("fn add(x: i64, mut y: Vec<String>) -> i64", &ELECTRON);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(n, 2);
    }

    #[test]
    fn reference_parameter_suggests_an_owned_type() {
        let (errors, _) = messages("fn f(x: &str, y: &mut Vec<i64>, z: &[u8])", &ELECTRON);
        assert_eq!(
            errors,
            [
                "electron parameter `x` is a reference (`&str`); electrons take owned values, \
                 which are cloned or serialized between tasks: use an owned type such as `String`",
                "electron parameter `y` is a reference (`&mut Vec<i64>`); electrons take owned \
                 values, which are cloned or serialized between tasks: use an owned type such as \
                 `Vec<i64>`",
                "electron parameter `z` is a reference (`&[u8]`); electrons take owned values, \
                 which are cloned or serialized between tasks: use an owned type such as `Vec<u8>`",
            ]
        );
        let (errors, _) = messages("fn f(x: Vec<&'static str>)", &ELECTRON);
        assert!(
            errors[0].contains("holds a reference (`Vec<&'static str>`)"),
            "{errors:?}"
        );
        assert!(errors[0].ends_with("such as `Vec<String>`"), "{errors:?}");
    }

    #[test]
    fn self_receiver_is_rejected() {
        let (errors, _) = messages("fn f(&self, x: i64)", &ELECTRON);
        assert_eq!(
            errors,
            [
                "#[electron] functions cannot take `self`: an electron is a free function whose \
              inputs travel between tasks; move the method body into a free function"
            ]
        );
    }

    #[test]
    fn every_shape_problem_is_collected() {
        let (errors, n) = messages(
            "const unsafe extern \"C\" fn f<T: Clone>((a, b): (i64, i64), _: u8, c: impl Display, d: i64) -> impl Iterator<Item = i64>",
            &LATTICE,
        );
        assert_eq!(n, 1, "only `d` is usable");
        let starts = [
            "#[lattice] functions cannot be `const`",
            "#[lattice] functions cannot be `unsafe`",
            "#[lattice] functions cannot declare an ABI (`extern \"C\"`)",
            "#[lattice] functions cannot be generic",
            "lattice parameters must be plain names such as `x: i64`, not `(a, b)`",
            "lattice parameters need a name",
            "lattice parameter `c` has an `impl Trait` type (`impl Display`)",
            "lattice functions cannot return `impl Trait` (`impl Iterator<Item = i64>`)",
        ];
        assert_eq!(errors.len(), starts.len(), "{errors:#?}");
        for (error, start) in errors.iter().zip(starts) {
            assert!(
                error.starts_with(start),
                "{error:?} should start with {start:?}"
            );
        }
    }

    #[test]
    fn missing_return_type_is_unit() {
        let sig: Signature = syn::parse_str("fn f()").expect("parses");
        assert_eq!(render(return_type(&sig).0), "()");
    }
}
