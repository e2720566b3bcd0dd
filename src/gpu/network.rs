//! placeholder
pub struct GpuMlp;
