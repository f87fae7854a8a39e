//! Compile-fail cases check that each macro error, and each type error in a pipeline, points at
//! the user's token and reads as a sentence; compile-pass cases check the accepted forms.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p ui-tests` and review
//! every changed `.stderr`.

covalent_test_support::isolated_home!();

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/fail/*.rs");
    t.pass("tests/pass/*.rs");
}
