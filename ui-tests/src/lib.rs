//! Compile-pass and compile-fail tests of the covalent macros (see `tests/`).

#![forbid(unsafe_code)]
