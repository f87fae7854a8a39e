//! Runnable covalent workflows; see `examples/`.

#![forbid(unsafe_code)]
