//! Runnable covalent workflows; see `examples/`.
