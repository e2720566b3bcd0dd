//! placeholder for shaders/transpose.wgsl
