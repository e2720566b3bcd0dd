//! The throughput benchmarks behind `wgpu-mlp bench`: two fixed workloads trained on random
//! MNIST-shaped data, on the GPU (data resident, as in real training) or on the CPU reference.
//!
//! - W1: 784-128-10, sigmoid hidden and output, MSE, batch 64, plain SGD at 0.5;
//! - W2: 784-1024-1024-10, ReLU hidden, softmax cross-entropy, batch 256, plain SGD at 0.05.
//!
//! The first step is timed from nothing (adapter, device, pipelines, uploads included); then a
//! warm-up, then at least the requested number of samples with the GPU waited for at the end.

#[cfg(not(target_arch = "wasm32"))]
use std::sync::Arc;

use web_time::Instant;

use crate::augment::Augmentation;
use crate::data::Dataset;
#[cfg(not(target_arch = "wasm32"))]
use crate::dropout::Dropout;
use crate::error::{Error, Result};
use crate::gpu::context::{AdapterChoice, Gpu};
use crate::gpu::kernels::MatmulStrategy;
use crate::gpu::network::Fusion;
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::profile::Profile;
use crate::model::{Activation, DEFAULT_LEAKY_SLOPE, Init, Loss, Mlp};
use crate::optim::OptimizerConfig;
use crate::rng::Rng;
use crate::train::{CpuTrainer, DataPlacement, GpuTrainer, TrainConfig, Trainer};

/// A benchmark workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Workload {
    /// 784-128-10 sigmoid, MSE, batch 64, SGD 0.5: the textbook network.
    #[cfg_attr(feature = "cli", value(name = "W1", alias = "w1"))]
    W1,
    /// 784-1024-1024-10 ReLU/softmax, cross-entropy, batch 256, SGD 0.05.
    #[cfg_attr(feature = "cli", value(name = "W2", alias = "w2"))]
    W2,
}

impl Workload {
    /// `W1` or `W2`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
        }
    }

    /// The network, seeded, with `hidden`'s activation if it chooses one.
    pub fn mlp_with(self, hidden: HiddenChoice) -> Result<Mlp> {
        let workload = self.mlp()?;
        let Some(activation) = hidden.activation else {
            return Ok(workload);
        };
        let last = workload.layers.len() - 1;
        Mlp::with_init_and_leaky_slope(
            &workload.sizes(),
            activation,
            workload.layers[last].activation,
            workload.loss,
            Init::Auto,
            hidden.leaky_slope.unwrap_or(DEFAULT_LEAKY_SLOPE),
            1,
        )
    }

    /// The network, seeded.
    pub fn mlp(self) -> Result<Mlp> {
        match self {
            Workload::W1 => Mlp::new(
                &[784, 128, 10],
                Activation::Sigmoid,
                Activation::Sigmoid,
                Loss::Mse,
                1,
            ),
            Workload::W2 => Mlp::new(
                &[784, 1024, 1024, 10],
                Activation::Relu,
                Activation::Softmax,
                Loss::CrossEntropy,
                1,
            ),
        }
    }

    /// Samples per step and the optimizer.
    pub fn config(self) -> TrainConfig {
        let (batch_size, learning_rate) = match self {
            Workload::W1 => (64, 0.5),
            Workload::W2 => (256, 0.05),
        };
        TrainConfig {
            optimizer: OptimizerConfig::sgd(learning_rate),
            batch_size,
            seed: 1,
            regularization: Default::default(),
        }
    }
}

/// Floating-point operations per training sample of `mlp`: a multiply-add is two, the forward
/// pass and `dW` each cost one per weight, and `δ_prev` one per weight of every layer but the
/// first (which has no previous δ).
pub fn flops_per_sample(mlp: &Mlp) -> f64 {
    mlp.layers
        .iter()
        .enumerate()
        .map(|(l, layer)| 2.0 * layer.weight.len() as f64 * if l == 0 { 2.0 } else { 3.0 })
        .sum()
}

/// The hidden layers' activation a benchmark trains with, to measure what one costs against
/// another.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HiddenChoice {
    /// `None`: the workload's (sigmoid for W1, ReLU for W2).
    pub activation: Option<Activation>,
    /// Leaky ReLU's negative slope; `None`: [`DEFAULT_LEAKY_SLOPE`].
    pub leaky_slope: Option<f32>,
}

/// What a benchmark measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// `W1` or `W2`.
    pub workload: &'static str,
    /// The adapter, or the CPU.
    pub adapter: String,
    /// Samples in the timed region.
    pub samples: usize,
    /// Length of the timed region.
    pub seconds: f64,
    /// Throughput.
    pub samples_per_s: f64,
    /// Arithmetic throughput, by [`flops_per_sample`].
    pub gflops: f64,
    /// From nothing to the end of the first step.
    pub first_step_s: f64,
    /// The matmul kernel the GPU ran; `None` for the CPU reference.
    pub matmul: Option<MatmulStrategy>,
}

/// Random MNIST-shaped bytes: the arithmetic does not depend on the values.
fn random_dataset(len: usize) -> Dataset {
    let mut rng = Rng::new(7);
    let images = (0..len * 784).map(|_| rng.below(256) as u8).collect();
    let labels = (0..len).map(|_| rng.below(10) as u32).collect();
    Dataset::images(images, (28, 28), labels, 10).expect("len images of 28 × 28")
}

fn report(
    workload: Workload,
    mlp: &Mlp,
    adapter: String,
    steps: usize,
    seconds: f64,
    first_step_s: f64,
) -> BenchReport {
    let samples = steps * workload.config().batch_size;
    let samples_per_s = samples as f64 / seconds.max(1e-9);
    BenchReport {
        workload: workload.name(),
        adapter,
        samples,
        seconds,
        samples_per_s,
        gflops: samples_per_s * flops_per_sample(mlp) / 1e9,
        first_step_s,
        matmul: None,
    }
}

/// Steps that cover at least `samples` samples.
fn steps_for(workload: Workload, samples: usize) -> Result<usize> {
    if samples == 0 {
        return Err(Error::invalid("samples", "0 (must be at least 1)"));
    }
    Ok(samples.div_ceil(workload.config().batch_size))
}

/// What to run a GPU benchmark on, and how.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuBenchOptions {
    /// The adapter.
    pub adapter: AdapterChoice,
    /// The fused kernels (the default) or the unfused ones, to measure what fusing saves.
    pub fusion: Fusion,
    /// After the timed region, profile this many more steps kernel by kernel (0: none).
    pub profile_steps: usize,
    /// The matmul kernel; `None` keeps the adapter's choice
    /// ([`KernelConfig::for_adapter`](crate::gpu::kernels::KernelConfig::for_adapter)).
    pub matmul: Option<MatmulStrategy>,
    /// Samples in the training set (`None`: 64 batches, or fewer if the run is shorter), to
    /// measure a set split across bindings or streamed.
    pub data_samples: Option<usize>,
    /// Where the training set lives.
    pub placement: DataPlacement,
    /// Deform every training batch (the random images are 28×28), to measure what it costs.
    pub augmentation: Option<Augmentation>,
    /// Clip the gradients' global norm to this every step, to measure what clipping costs.
    pub clip_norm: Option<f32>,
    /// Dropout on every hidden layer at this probability (0: none), to measure what it costs.
    pub dropout: f32,
    /// The hidden activation, to measure what it costs.
    pub hidden: HiddenChoice,
}

/// Trains `workload` on the GPU `options` select: the first step from nothing, a warm-up, then at
/// least `samples` samples; also returns the profile if one was asked for. Blocks, so native
/// only.
#[cfg(not(target_arch = "wasm32"))]
pub fn bench_gpu(
    workload: Workload,
    samples: usize,
    options: &GpuBenchOptions,
) -> Result<(BenchReport, Option<Profile>)> {
    let steps = steps_for(workload, samples)?;
    let batch = workload.config().batch_size;
    let data = random_dataset(options.data_samples.unwrap_or(steps.min(64) * batch));
    let start = Instant::now();
    let gpu = Gpu::with_kernel_config(options.adapter.clone(), |config| {
        if let Some(matmul) = options.matmul {
            config.matmul = matmul;
        }
    })?;
    let mlp = workload.mlp_with(options.hidden)?;
    let (data, mut config) = (Arc::new(data), workload.config());
    config.regularization.clip_norm = options.clip_norm;
    let hidden_layers = mlp.layers.len() - 1;
    config.regularization.dropout.hidden =
        Dropout::hidden_rates(&[options.dropout], hidden_layers)?;
    let mut trainer =
        GpuTrainer::with_placement(&gpu, &mlp, data, None, config, options.placement)?;
    trainer.set_fusion(options.fusion)?;
    if let Some(augmentation) = &options.augmentation {
        trainer.set_augmentation(augmentation)?;
    }
    trainer.run_steps(1)?;
    let first_step_s = start.elapsed().as_secs_f64();
    trainer.run_steps(steps.div_ceil(10).max(2))?;
    let timed = Instant::now();
    trainer.run_steps(steps)?;
    let seconds = timed.elapsed().as_secs_f64();
    let profile = if options.profile_steps > 0 {
        trainer.profile_next_steps(options.profile_steps)?;
        trainer.run_steps(options.profile_steps)?;
        trainer.profile()
    } else {
        None
    };
    let report = BenchReport {
        matmul: Some(gpu.config().matmul),
        ..report(
            workload,
            &mlp,
            gpu.adapter_description(),
            steps,
            seconds,
            first_step_s,
        )
    };
    Ok((report, profile))
}

/// Trains `workload` on `gpu`, an open device, without blocking (how a browser benchmarks): the
/// first step from the upload of the network and data, a warm-up, then at least `samples`
/// samples, the queue awaited at the end of each part.
pub async fn bench_gpu_async(gpu: &Gpu, workload: Workload, samples: usize) -> Result<BenchReport> {
    let steps = steps_for(workload, samples)?;
    let data = random_dataset(steps.min(64) * workload.config().batch_size);
    let start = Instant::now();
    let mlp = workload.mlp()?;
    let mut trainer = GpuTrainer::new(gpu, &mlp, &data, None, workload.config())?;
    let wait = || gpu.submit_and_wait_async(gpu.encoder("bench.wait"));
    trainer.run_steps(1)?;
    wait().await?;
    let first_step_s = start.elapsed().as_secs_f64();
    trainer.run_steps(steps.div_ceil(10).max(2))?;
    wait().await?;
    let timed = Instant::now();
    trainer.run_steps(steps)?;
    wait().await?;
    let seconds = timed.elapsed().as_secs_f64();
    Ok(BenchReport {
        matmul: Some(gpu.config().matmul),
        ..report(
            workload,
            &mlp,
            gpu.adapter_description(),
            steps,
            seconds,
            first_step_s,
        )
    })
}

/// The same on the CPU reference, with `hidden`'s activation.
pub fn bench_cpu(workload: Workload, samples: usize, hidden: HiddenChoice) -> Result<BenchReport> {
    let steps = steps_for(workload, samples)?;
    let batch = workload.config().batch_size;
    let start = Instant::now();
    let first = random_dataset(batch);
    let mlp = workload.mlp_with(hidden)?;
    CpuTrainer::new(&mlp, &first, None, workload.config())?.train_epoch(&mut |_| {})?;
    let first_step_s = start.elapsed().as_secs_f64();
    let data = random_dataset(steps * batch);
    let mut trainer = CpuTrainer::new(&mlp, &data, None, workload.config())?;
    let timed = Instant::now();
    trainer.train_epoch(&mut |_| {})?;
    Ok(report(
        workload,
        &mlp,
        "cpu (ndarray reference)".into(),
        steps,
        timed.elapsed().as_secs_f64(),
        first_step_s,
    ))
}
