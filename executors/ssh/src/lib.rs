//! The `ssh` executor for covalent (being written).
