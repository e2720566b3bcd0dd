//! `wgpu-mlp bench`: trains a fixed workload on random data kept on the GPU and reports its
//! throughput, the time of the first step from nothing, and (with `--profile`) each kernel's time.

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;

use wgpu_mlp::augment::Augmentation;
use wgpu_mlp::bench::{GpuBenchOptions, HiddenChoice, Workload, bench_cpu, bench_gpu};
use wgpu_mlp::gpu::kernels::MatmulStrategy;
use wgpu_mlp::train::DataPlacement;
use wgpu_mlp::{Activation, Fusion};

use crate::common::out;
use crate::common::{hidden_activation, profile_json};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The workload.
    #[arg(long, value_enum, default_value = "W1")]
    workload: Workload,
    /// Adapter: auto, software, a backend (vulkan, metal, dx12, gl), NAME@BACKEND, or part of an
    /// adapter's name.
    #[arg(long, default_value = "auto")]
    adapter: String,
    /// Benchmark the CPU reference instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// Samples in the timed region (after the first step and a warm-up).
    #[arg(long, default_value_t = 12_800)]
    samples: usize,
    /// Then time STEPS more steps kernel by kernel with timestamp queries, and print where a
    /// step's GPU time goes.
    #[arg(long, value_name = "STEPS", num_args = 0..=1, default_missing_value = "20")]
    profile: Option<usize>,
    /// Run bias, activation and ⊙g′ as kernels of their own instead of in the matmul
    /// epilogues, to measure what fusing them saves.
    #[arg(long)]
    unfused: bool,
    /// The matmul kernel: auto (the adapter's choice: shared-memory tiles on GPUs, register
    /// blocks on CPU adapters, shuffled where they have subgroups), or tiled, register or
    /// shuffled, forced, to compare them.
    #[arg(long, default_value = "auto", value_name = "KERNEL", value_parser = parse_matmul)]
    matmul: MatmulChoice,
    /// Training samples the timed steps draw from [default: 64 batches].
    #[arg(long, value_name = "N")]
    data_samples: Option<usize>,
    /// Where the training samples live: auto (on the GPU, in one buffer or in chunks of one
    /// binding each; streamed from the host beyond 8 chunks), resident, or streamed.
    #[arg(long, value_enum, default_value = "auto")]
    placement: DataPlacement,
    /// Deform every training batch on the GPU (affine, elastic or affine,elastic, with the
    /// defaults of `train`), to measure what it costs.
    #[arg(long, value_name = "KINDS", value_parser = parse_augment)]
    augment: Option<Augmentation>,
    /// Clip the gradients' global L2 norm to this every step (as `train --clip-norm`), to
    /// measure what clipping costs.
    #[arg(long, value_name = "MAX_NORM")]
    clip_norm: Option<f32>,
    /// Dropout after every hidden layer at this probability (as `train --dropout P`), to measure
    /// what it costs.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    dropout: f32,
    /// The hidden layers' activation, to measure what it costs [default: the workload's,
    /// sigmoid for W1 and ReLU for W2].
    #[arg(long, value_parser = hidden_activation())]
    hidden: Option<Activation>,
    /// With --hidden leaky-relu: its negative slope, as `train --leaky-slope` [default: 0.01].
    #[arg(long, value_name = "SLOPE", allow_negative_numbers = true)]
    leaky_slope: Option<f32>,
    /// Print the result as one JSON line.
    #[arg(long)]
    json: bool,
}

fn parse_augment(kinds: &str) -> Result<Augmentation, String> {
    Augmentation::from_kinds(kinds).map_err(|e| e.to_string())
}

/// `--matmul`: the adapter's choice (`None`) or a strategy forced.
#[derive(Clone, Copy, Debug)]
struct MatmulChoice(Option<MatmulStrategy>);

fn parse_matmul(name: &str) -> Result<MatmulChoice, String> {
    let strategy = match name {
        "auto" => None,
        "tiled" => Some(MatmulStrategy::Tiled),
        "register" => Some(MatmulStrategy::RegisterBlocked),
        "shuffled" => Some(MatmulStrategy::Shuffled),
        _ => {
            return Err(format!(
                "{name:?} is not one of auto, tiled, register, shuffled"
            ));
        }
    };
    Ok(MatmulChoice(strategy))
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.leaky_slope.is_some() && args.hidden != Some(Activation::LeakyRelu) {
        bail!("--leaky-slope is the slope of --hidden leaky-relu; add --hidden leaky-relu");
    }
    let hidden = HiddenChoice {
        activation: args.hidden,
        leaky_slope: args.leaky_slope,
    };
    let fusion = if args.unfused {
        Fusion::Unfused
    } else {
        Fusion::Fused
    };
    let (report, profile) = if args.cpu {
        if args.profile.is_some()
            || args.unfused
            || args.matmul.0.is_some()
            || args.augment.is_some()
            || args.clip_norm.is_some()
            || args.dropout > 0.0
        {
            bail!(
                "--profile, --unfused, --matmul, --augment, --clip-norm and --dropout are about \
                 the GPU kernels; they cannot be used with --cpu"
            );
        }
        (bench_cpu(args.workload, args.samples, hidden)?, None)
    } else {
        let options = GpuBenchOptions {
            adapter: args.adapter.parse()?,
            fusion,
            profile_steps: args.profile.unwrap_or(0),
            matmul: args.matmul.0,
            data_samples: args.data_samples,
            placement: args.placement,
            augmentation: args.augment,
            clip_norm: args.clip_norm,
            dropout: args.dropout,
            hidden,
        };
        bench_gpu(args.workload, args.samples, &options)?
    };
    if args.json {
        let line = json!({
            "workload": report.workload, "adapter": report.adapter, "samples_per_s": report.samples_per_s,
            "gflops": report.gflops, "first_step_s": report.first_step_s, "samples": report.samples, "seconds": report.seconds,
            "kernels": if args.cpu { "cpu" } else if args.unfused { "unfused" } else { "fused" },
            "matmul": report.matmul.map(|m| format!("{m:?}")),
            "augment": args.augment.map(|a| a.kinds()),
            "hidden": args.hidden.map(Activation::name),
            "profile": profile.as_ref().map(profile_json),
        });
        out!("{line}")?;
        return Ok(());
    }
    out!(
        "{} on {}: {:.0} samples/s, {:.2} GFLOP/s over {} samples in {:.2} s; first step {:.2} s{}{}{}{}",
        report.workload,
        report.adapter,
        report.samples_per_s,
        report.gflops,
        report.samples,
        report.seconds,
        report.first_step_s,
        if args.unfused {
            " (unfused kernels)"
        } else {
            ""
        },
        report
            .matmul
            .map(|m| format!(" ({m:?} matmul)"))
            .unwrap_or_default(),
        args.augment
            .map(|a| format!(" (--augment {})", a.kinds()))
            .unwrap_or_default(),
        args.hidden
            .map(|a| format!(" (--hidden {})", a.name()))
            .unwrap_or_default()
    )?;
    if let Some(profile) = &profile {
        out!("{profile}")?;
    }
    Ok(())
}
