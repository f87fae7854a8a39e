//! The `slurm` executor for covalent (being written).
