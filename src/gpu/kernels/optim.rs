//! placeholder for shaders/optim.wgsl
