//! placeholder for shaders/loss.wgsl
