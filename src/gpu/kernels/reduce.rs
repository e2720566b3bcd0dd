//! placeholder for shaders/reduce.wgsl
