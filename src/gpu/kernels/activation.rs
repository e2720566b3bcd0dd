//! placeholder for shaders/activation.wgsl
