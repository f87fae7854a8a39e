//! Expansion tests of `#[electron]`: the generated wrapper, module, description and body for
//! each kind of electron, attribute placement, and what is emitted on errors.

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
    let node = "-> ::covalent::Node<<fmt::Result as ::covalent::__private::ElectronResult>::Ok>";
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
fn a_body_that_does_not_parse_is_copied_as_written() {
    let out = expand_str("", "fn add(x: i64) -> i64 { let y = x + ; y }");
    assert!(!out.contains("compile_error"), "no macro error: {out}");
    assert!(
        out.starts_with(&compact(
            "fn add(x: impl ::covalent::IntoNode<i64>) -> ::covalent::Node<i64>"
        )),
        "{out}"
    );
    assert!(
        out.contains(&compact("pub fn call(x: i64) -> i64 { let y = x + ; y }")),
        "{out}"
    );
    let out = expand_str("", "#[lattice] fn inner(x: i64) -> i64 { return x + ; }");
    assert!(!out.contains("compile_error"), "no early-exit check: {out}");
    assert!(
        out.contains(&compact("inner({ return x + ; }) } }")),
        "the whole body is the tail: {out}"
    );
}

#[test]
fn bodies_move_one_module_deeper_and_keep_their_inner_attributes() {
    let out = expand_str(
        "",
        "fn f(p: self::Point) -> super::Out { #![allow(unused)] super::g(self::h(), m!(self::x)) }",
    );
    for part in [
        "fn f(p: impl ::covalent::IntoNode<self::Point>) -> ::covalent::Node<super::Out>",
        "pub fn call(p: super::Point) -> super::super::Out { #![allow(unused)] super::super::g(super::h(), m!(self::x)) }",
    ] {
        assert!(out.contains(&compact(part)), "missing {part:?} in {out}");
    }
    let out = expand_str("", "#[lattice] fn inner() { #![allow(unused)] side(); }");
    assert!(
        out.contains(&compact(
            "#[allow(unused)] pub fn lattice() -> ::covalent::Lattice<()>"
        )),
        "{out}"
    );
}

#[test]
fn a_rejected_sublattice_is_kept_without_its_lattice_attribute() {
    let out = expand_str(
        "",
        "#[lattice(fail_fast = true)] fn f(x: &str) -> i64 { 1 }",
    );
    assert!(
        out.starts_with(&compact("fn f(x: &str) -> i64 { 1 }")),
        "{out}"
    );
    assert!(!out.contains("lattice"), "{out}");
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
