//! `wgpu-mlp gradcheck`: GPU gradients against the CPU reference, and the CPU reference against
//! central finite differences in f64, on a random batch.

use anyhow::{Result, bail};
use clap::Args;

use wgpu_mlp::dropout::{Dropout, DropoutMasks};
use wgpu_mlp::gradcheck::{self, Element, Tensor, Tolerance};
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::reference;
use wgpu_mlp::rng::Rng;
use wgpu_mlp::{Activation, DEFAULT_LEAKY_SLOPE, GpuMlp, Init, Loss, Mlp, Regularization};

use crate::common::out;
use crate::common::{hidden_activation, open_gpu, output_activation, parse_sizes};
use crate::train::{Rates, Sizes};

#[derive(Args, Debug)]
pub struct GradcheckArgs {
    /// Layer sizes, inputs first.
    #[arg(long, value_parser = |text: &str| parse_sizes(text).map(Sizes), default_value = "784,128,10")]
    layers: Sizes,
    /// Activation of the hidden layers.
    #[arg(long, value_parser = hidden_activation(), default_value = "sigmoid")]
    hidden: Activation,
    /// Negative slope of --hidden leaky-relu, as `train --leaky-slope`.
    #[arg(long, value_name = "SLOPE", allow_negative_numbers = true)]
    leaky_slope: Option<f32>,
    /// Loss (the output layer follows it: softmax for cross-entropy, sigmoid otherwise).
    #[arg(long, value_enum, default_value = "mse")]
    loss: Loss,
    /// Rows in the random batch.
    #[arg(long, default_value_t = 7)]
    batch: usize,
    /// Parameters per layer checked by finite differences (sampled evenly).
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Seed of the model, the batch and the dropout masks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Check with dropout after the hidden layers, as `train --dropout P` (one probability, or
    /// one per hidden layer), the masks of a first training step held fixed.
    #[arg(long, value_name = "P", value_parser = |text: &str| wgpu_mlp::dropout::parse_rates(text).map(Rates))]
    dropout: Option<Rates>,
    /// Check with dropout on the input, as `train --input-dropout P`.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    input_dropout: f32,
    /// Adapter: auto, software, a backend (vulkan, metal, dx12, gl), NAME@BACKEND, or part of an
    /// adapter's name.
    #[arg(long, default_value = "auto")]
    adapter: String,
}

/// A random batch for `mlp`: inputs in [−1, 1]; one-hot targets for cross-entropy, values in
/// [0.05, 0.95] otherwise.
fn random_batch(mlp: &Mlp, rows: usize, seed: u64) -> (Array2<f32>, Array2<f32>) {
    let mut rng = Rng::new(seed + 1);
    let x = Array2::from_shape_simple_fn((rows, mlp.inputs()), || rng.uniform(-1.0, 1.0) as f32);
    let y = match mlp.loss {
        Loss::CrossEntropy => Array2::from_shape_fn((rows, mlp.outputs()), |(r, c)| {
            f32::from(u8::from(c == r % mlp.outputs()))
        }),
        _ => Array2::from_shape_simple_fn((rows, mlp.outputs()), || rng.uniform(0.05, 0.95) as f32),
    };
    (x, y)
}

pub fn run(args: GradcheckArgs) -> Result<()> {
    let loss = args.loss;
    let output = output_activation(None, Some(loss));
    if args.leaky_slope.is_some() && args.hidden != Activation::LeakyRelu {
        bail!("--leaky-slope is the slope of --hidden leaky-relu; add --hidden leaky-relu");
    }
    let mlp = Mlp::with_init_and_leaky_slope(
        &args.layers.0,
        args.hidden,
        output,
        loss,
        Init::Auto,
        args.leaky_slope.unwrap_or(DEFAULT_LEAKY_SLOPE),
        args.seed,
    )?;
    mlp.validate()?;
    if args.batch == 0 {
        bail!("--batch 0: the check needs at least one row");
    }
    if args.batch > MAX_BATCH {
        bail!(
            "--batch {}: at most {MAX_BATCH} rows; every finite difference runs the batch forward twice in f64, \
             and a larger batch checks nothing more",
            args.batch
        );
    }
    let (x, y) = random_batch(&mlp, args.batch, args.seed);
    let gpu = open_gpu(&args.adapter)?;
    out!(
        "gradcheck {:?} {}→{} {} batch {} on {}",
        mlp.sizes(),
        mlp.layers[0].activation.name(),
        output.name(),
        loss.name(),
        args.batch,
        gpu.adapter_description()
    )?;

    let hidden_layers = mlp.layers.len() - 1;
    let dropout = Dropout {
        input: args.input_dropout,
        hidden: match &args.dropout {
            Some(rates) => Dropout::hidden_rates(&rates.0, hidden_layers)?,
            None => Vec::new(),
        },
    };
    dropout.check_ranges()?;
    // The masks of a first training step (step 0), which the GPU regenerates from its counter.
    let masks = dropout.masks(args.seed, 0, args.batch, &mlp.sizes());
    let (cpu_loss, cpu) = mlp.loss_and_gradients_with_dropout(x.view(), y.view(), &masks)?;
    let mut net = GpuMlp::new(&gpu, &mlp)?;
    net.set_dropout_seed(args.seed)?;
    net.set_regularization(Regularization {
        dropout,
        ..Default::default()
    })?;
    let (gpu_loss, gpu_grads) = net.loss_and_gradients(x.view(), y.view())?;
    out!("loss: gpu {gpu_loss:.9}, cpu {cpu_loss:.9}")?;
    let tolerance = Tolerance::GPU_VS_CPU;
    let comparison = gradcheck::compare(&gpu_grads, &cpu, tolerance)?;
    let largest = comparison.largest_difference;
    match &comparison.worst {
        Some(worst) => out!(
            "worst gpu − cpu gradient difference against its tolerance: {:.3}× at {} (|gpu − cpu| {:.3e}, allowed {:.3e}); largest |gpu − cpu| {largest:.3e}",
            worst.ratio,
            element_name(&mlp, worst),
            worst.difference,
            worst.allowed
        )?,
        None => out!("no gradients to compare")?,
    }
    let gpu_ok = comparison.passed() && tolerance.accepts(gpu_loss, cpu_loss);

    let worst_fd = check_finite_differences(&mlp, (&x, &y, &masks), args.samples)?;
    const FD_TOLERANCE: f64 = 1e-6;
    let tolerances = format!(
        "tolerances: gpu {:e} + {:e}·|cpu|, finite differences {FD_TOLERANCE:e}",
        tolerance.atol, tolerance.rtol
    );
    if !gpu_ok {
        bail!("the GPU's gradients differ from the CPU reference's: {comparison} ({tolerances})");
    }
    if worst_fd.0 > FD_TOLERANCE {
        bail!("the CPU reference differs from finite differences ({tolerances})");
    }
    out!("ok ({tolerances})")?;
    Ok(())
}

/// `layer 1 dweight[6, 8]`: where an element sits, as the model's shapes index it.
fn element_name(mlp: &Mlp, element: &Element) -> String {
    let name = element.tensor.name();
    match element.tensor {
        Tensor::Weight => {
            let inputs = mlp.layers[element.layer].inputs();
            let (row, column) = (element.index / inputs, element.index % inputs);
            format!("layer {} {name}[{row}, {column}]", element.layer)
        }
        Tensor::Bias => format!("layer {} {name}[{}]", element.layer, element.index),
    }
}

/// The most rows `--batch` takes: the batch is allocated before anything else, and each sampled
/// parameter runs it forward twice, so beyond this the check only takes longer.
const MAX_BATCH: usize = 4096;

/// The step of the central finite differences.
const FD_STEP: f64 = 1e-6;

/// Checks the CPU reference against central finite differences in f64 on `per_layer` parameters
/// of each layer, with the dropout `masks` held fixed, printing the worst difference; returns it.
fn check_finite_differences(
    mlp: &Mlp,
    (x, y, masks): (&Array2<f32>, &Array2<f32>, &DropoutMasks),
    per_layer: usize,
) -> Result<(f64, String)> {
    let step = FD_STEP;
    let all_checks = reference::finite_difference_check_with_dropout(
        mlp,
        x.view(),
        y.view(),
        masks,
        step,
        per_layer,
    )?;
    // Across a ReLU kink a finite difference estimates no derivative: leave those out, and say so.
    let (checks, kinked): (Vec<_>, Vec<_>) =
        all_checks.into_iter().partition(|c| !c.crosses_relu_kink);
    if !kinked.is_empty() {
        out!(
            "{} sampled parameters left out: their step crosses a ReLU kink",
            kinked.len()
        )?;
    }
    let checked = checks.len();
    let worst_fd = checks
        .iter()
        .map(|c| {
            (
                (c.finite_difference - c.analytic).abs(),
                c.parameter.clone(),
            )
        })
        .fold((0.0f64, String::new()), |worst, next| {
            if next.0 > worst.0 { next } else { worst }
        });
    out!(
        "worst |finite difference − analytic| (f64, {checked} parameters, step {step:e}): {:.3e} ({})",
        worst_fd.0,
        worst_fd.1
    )?;
    Ok(worst_fd)
}
