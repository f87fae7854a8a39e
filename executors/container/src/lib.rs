//! The `container` executor for covalent (being written).
