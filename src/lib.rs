//! # wgpu-mlp
//!
//! Train multi-layer perceptrons with backpropagation on any GPU — Vulkan, Metal, DX12 — through
//! [wgpu], with a CPU reference written in [ndarray] that computes the same math and cross-checks
//! every gradient.
//!
//! Conventions are PyTorch's: a batch is `x: (batch, in)` row-major, a layer holds
//! `weight: (out, in)` and `bias: (out)`, `z = x · weightᵀ + bias`, `a = g(z)`, and losses are
//! reduced by the mean.
//!
//! The library also builds for `wasm32-unknown-unknown`, where it runs on a browser's WebGPU
//! (`web/` is the module of the browser page). There nothing may block: the device is opened with
//! [`Gpu::new_async`], and everything that reads from the GPU has an `_async` form
//! ([`GpuMlp::to_mlp_async`], [`GpuTrainer::train_epoch_async`], …); the blocking forms below
//! are thin wrappers over those, compiled natively only. A browser has no files: what reads or
//! writes a path fails there with an I/O error, and its byte forms (`checkpoint::to_bytes`,
//! `checkpoint::from_bytes`, `data::idx::parse_idx`) take its place.
//!
//! ```
//! use wgpu_mlp::ndarray::Array2;
//! use wgpu_mlp::{Activation, AdapterChoice, Gpu, GpuMlp, Loss, Mlp, gradcheck};
//!
//! # fn main() -> wgpu_mlp::Result<()> {
//! let x = Array2::from_shape_vec((4, 2), vec![0., 0., 0., 1., 1., 0., 1., 1.]).unwrap();
//! let y = Array2::from_shape_vec((4, 1), vec![0., 1., 1., 0.]).unwrap();
//! let mlp = Mlp::new(&[2, 8, 1], Activation::Tanh, Activation::Sigmoid, Loss::BinaryCrossEntropy, 42)?;
//!
//! // The CPU reference: the loss and the gradient of every layer.
//! let (cpu_loss, cpu_grads) = mlp.loss_and_gradients(x.view(), y.view())?;
//!
//! // The same on the GPU, then training there.
//! let gpu = Gpu::new(AdapterChoice::Auto)?;
//! let mut net = GpuMlp::new(&gpu, &mlp)?;
//! let (gpu_loss, gpu_grads) = net.loss_and_gradients(x.view(), y.view())?;
//! assert!((cpu_loss - gpu_loss).abs() < 1e-5);
//! let check = gradcheck::compare(&gpu_grads, &cpu_grads, gradcheck::Tolerance::GPU_VS_CPU)?;
//! assert!(check.passed(), "{check}");
//! for _ in 0..200 {
//!     net.train_step(x.view(), y.view(), 0.5)?;
//! }
//! // The loss of the last step's batch, before its update: training has lowered it.
//! assert!(net.last_loss()? < gpu_loss);
//! let trained: Mlp = net.to_mlp()?;
//! # let _ = trained;
//! # Ok(())
//! # }
//! ```

pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod dropout;
pub mod error;
pub mod fast;
pub mod files;
pub mod gpu;
pub mod gradcheck;
pub mod model;
pub mod optim;
pub mod plot;
pub mod reference;
pub mod rng;
pub mod run;
pub mod train;

pub use checkpoint::CheckpointInfo;
pub use data::{Dataset, DatasetKind, Features, Targets, Task};
pub use error::{Error, Result};
pub use gpu::{AdapterChoice, FeatureMask, Fusion, Gpu, GpuMlp, GpuOptions, LimitsPreset};
pub use model::{
    Activation, DEFAULT_LEAKY_SLOPE, Dense, DenseGradients, Gradients, Init, Loss, Mlp,
};
pub use ndarray;
pub use optim::{Optimizer, OptimizerConfig};
pub use run::{
    Callbacks, Data, DataOptions, Device, EpochOutcome, History, Normalize, Resume, Run,
    ScheduleName, Summary, TrainSpec,
};
pub use train::{
    CpuTrainer, DataPlacement, GpuTrainer, Regularization, Split, StopFlag, TrainConfig, Trainer,
};
pub use wgpu;

/// The README's Rust programs, compiled and run as doc tests so that they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
