//! The function under an attribute: its attributes, visibility and signature parsed with syn,
//! its body kept as the brace-delimited tokens the user wrote.
//!
//! Bodies are never required to parse: a syntax error inside one is rustc's to report, and the
//! macros still expand around it, so the rest of the crate keeps type-checking. This module also
//! owns the error for an attribute placed on something that is not a function; it knows nothing
//! about electrons or lattices.

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{AttrStyle, Attribute, Item, LitStr, Signature, Token, Visibility};

use crate::errors::Errors;
use crate::signature::first_span;

/// A function item as written, with an unparsed body.
#[derive(Clone)]
pub(crate) struct Function {
    /// Outer attributes (the inner ones stay in `body`).
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// The body, braces included, exactly as written.
    pub(crate) body: Group,
}

impl Parse for Function {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let body = match input.parse::<TokenTree>() {
            Ok(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => group,
            _ => return Err(input.error("expected the function's body")),
        };
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the function's body"));
        }
        Ok(Function {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

impl ToTokens for Function {
    /// The function as written (with the attributes it now has).
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for attr in &self.attrs {
            attr.to_tokens(tokens);
        }
        self.vis.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        self.body.to_tokens(tokens);
    }
}

impl Function {
    /// Reads the item under `attr` (`"#[electron]"`). `None` when it is not a function (an
    /// error is recorded) or when its signature does not parse (no error: rustc's parser reports
    /// it, and the item is emitted unchanged).
    pub(crate) fn read(item: &TokenStream, attr: &str, errors: &mut Errors) -> Option<Function> {
        if let Ok(function) = syn::parse2::<Function>(item.clone()) {
            return Some(function);
        }
        let signature_reads = Parser::parse2(head_then_signature, item.clone()).is_ok();
        let looks_like_a_function =
            Parser::parse2(starts_like_a_function, item.clone()).unwrap_or(false);
        // A function head that does not parse is a syntax error of its own; a readable head
        // with no body (`fn f();`) or anything else is not something the macro can expand.
        if looks_like_a_function && !signature_reads {
            return None;
        }
        errors.push(not_a_function(item, attr));
        None
    }
}

/// The leading `#![...]` attributes of `body`, as outer attributes, and the body without them.
/// Generated code that moves a body into a closure or an async block hoists them onto the
/// function it generates (attributes on those expressions are unstable).
pub(crate) fn hoist_inner_attrs(body: &Group) -> (Vec<Attribute>, Group) {
    let split = |input: ParseStream<'_>| {
        let attrs = input.call(Attribute::parse_inner)?;
        let rest: TokenStream = input.parse()?;
        Ok((attrs, rest))
    };
    match split.parse2(body.stream()) {
        Ok((mut attrs, rest)) if !attrs.is_empty() => {
            for attr in &mut attrs {
                attr.style = AttrStyle::Outer;
            }
            let mut without = Group::new(Delimiter::Brace, rest);
            without.set_span(body.span());
            (attrs, without)
        }
        _ => (Vec::new(), body.clone()),
    }
}

/// Outer attributes, visibility and a signature, ignoring whatever follows.
fn head_then_signature(input: ParseStream<'_>) -> syn::Result<()> {
    input.call(Attribute::parse_outer)?;
    input.parse::<Visibility>()?;
    input.parse::<Signature>()?;
    input.parse::<TokenStream>()?;
    Ok(())
}

/// Whether the item reads as attributes, a visibility and qualifiers (`const`, `async`,
/// `unsafe`, `extern "C"`) followed by `fn`.
fn starts_like_a_function(input: ParseStream<'_>) -> syn::Result<bool> {
    input.call(Attribute::parse_outer)?;
    input.parse::<Visibility>()?;
    let mut found = false;
    loop {
        if input.peek(Token![fn]) {
            found = true;
            break;
        }
        let qualifier = input.peek(Token![const])
            || input.peek(Token![async])
            || input.peek(Token![unsafe])
            || input.peek(Token![extern])
            || input.peek(LitStr);
        if !qualifier {
            break;
        }
        input.parse::<TokenTree>()?;
    }
    input.parse::<TokenStream>()?;
    Ok(found)
}

/// The error for an attribute placed on something other than a function, spanned on the
/// item's keyword and name (`struct Point`, `impl Shape for Circle`).
pub(crate) fn not_a_function(item: &TokenStream, attr: &str) -> syn::Error {
    fn head(keyword: impl ToTokens, name: impl ToTokens) -> TokenStream {
        let mut tokens = keyword.into_token_stream();
        name.to_tokens(&mut tokens);
        tokens
    }
    let message = format!("{attr} can only be applied to a function");
    let head = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(i)) => head(i.struct_token, i.ident),
        Ok(Item::Enum(i)) => head(i.enum_token, i.ident),
        Ok(Item::Union(i)) => head(i.union_token, i.ident),
        Ok(Item::Trait(i)) => head(i.trait_token, i.ident),
        Ok(Item::TraitAlias(i)) => head(i.trait_token, i.ident),
        Ok(Item::Type(i)) => head(i.type_token, i.ident),
        Ok(Item::Mod(i)) => head(i.mod_token, i.ident),
        Ok(Item::Const(i)) => head(i.const_token, i.ident),
        Ok(Item::Static(i)) => head(i.static_token, i.ident),
        Ok(Item::Impl(i)) => head(i.impl_token, i.self_ty),
        Ok(Item::ExternCrate(i)) => head(i.extern_token, i.ident),
        Ok(Item::ForeignMod(i)) => i.abi.into_token_stream(),
        Ok(Item::Use(i)) => i.use_token.into_token_stream(),
        Ok(Item::Macro(i)) => i.mac.path.into_token_stream(),
        _ => return syn::Error::new(first_span(item), message),
    };
    syn::Error::new_spanned(head, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(item: &str) -> (Option<Function>, Vec<String>) {
        let item: TokenStream = item.parse().expect("item tokenizes");
        let mut errors = Errors::default();
        let function = Function::read(&item, "#[electron]", &mut errors);
        let messages = errors
            .into_error()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        (function, messages)
    }

    #[test]
    fn a_body_is_kept_as_written_even_when_it_does_not_parse() {
        let (function, errors) =
            read("/// Docs.\npub async fn f(x: i64) -> i64 { let y = x + ; y }");
        let function = function.expect("the head parses");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(function.attrs.len(), 1);
        assert_eq!(function.body.to_string(), "{ let y = x + ; y }");
        assert_eq!(
            function.to_token_stream().to_string(),
            "# [doc = \" Docs.\"] pub async fn f (x : i64) -> i64 { let y = x + ; y }"
        );
    }

    #[test]
    fn an_unreadable_signature_is_left_to_rustc() {
        let (function, errors) = read("fn f(x: i64, y) -> i64 { x }");
        assert!(function.is_none());
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn other_items_and_bodiless_functions_are_rejected() {
        for item in [
            "struct Point { x: i64 }",
            "type F = fn(i64);",
            "fn f(x: i64);",
        ] {
            let (function, errors) = read(item);
            assert!(function.is_none(), "{item}");
            assert_eq!(
                errors,
                ["#[electron] can only be applied to a function"],
                "{item}"
            );
        }
    }

    #[test]
    fn inner_attributes_are_hoisted() {
        let (function, _) = read("fn f() { #![allow(unused)] let x = 1; }");
        let (attrs, body) = hoist_inner_attrs(&function.expect("parses").body);
        assert_eq!(
            attrs
                .iter()
                .map(|a| a.to_token_stream().to_string())
                .collect::<Vec<_>>(),
            ["# [allow (unused)]"]
        );
        assert_eq!(body.to_string(), "{ let x = 1 ; }");
        let (function, _) = read("fn f() { x }");
        let (attrs, body) = hoist_inner_attrs(&function.expect("parses").body);
        assert!(attrs.is_empty());
        assert_eq!(body.to_string(), "{ x }");
    }
}
