//! placeholder for shaders/elementwise.wgsl
