//! Data sets: IDX files (MNIST, Fashion-MNIST) and the built-in synthetic set.
pub mod idx;
