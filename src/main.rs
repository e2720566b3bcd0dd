//! The `wgpu-mlp` command line (placeholder until the trainer lands).
fn main() {}
