//! The `covalent` command (being written).
fn main() {}
