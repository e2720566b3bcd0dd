//! The GPU path: the device context, one kernel wrapper per shader, and the network.
pub mod context;
pub mod kernels;
pub mod network;
pub mod profile;

pub use context::{AdapterChoice, FeatureMask, Gpu, GpuOptions, LimitsPreset};
pub use network::{Fusion, GpuMlp};
