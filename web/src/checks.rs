//! The checks the page runs on its own device, GPU against the CPU reference compiled into this
//! module: a subset of `tests/kernels` and `tests/gradients.rs` at sizes on both sides of the
//! kernels' tiles, optimizer steps, and a whole trainer against `CpuTrainer`; and the
//! benchmark workloads of `src/bench.rs`.
//!
//! Every check reports `worst`: its largest difference as a multiple of what its tolerance
//! allows there (`|gpu − cpu| / (atol + rtol·|cpu|)`), so at most 1 passes.

use serde_json::{Value, json};
use wasm_bindgen::prelude::*;
use wgpu_mlp::bench::{Workload, bench_gpu_async};
use wgpu_mlp::gpu::kernels::matmul::{Epilogue, Matmul, MatmulOperands, MatmulShape};
use wgpu_mlp::gpu::kernels::{Dispatch, MatmulStrategy};
use wgpu_mlp::gradcheck::{self, Tolerance};
use wgpu_mlp::ndarray::{Array2, ArrayView2};
use wgpu_mlp::rng::Rng;
use wgpu_mlp::{Activation, Error, Gpu, GpuMlp, Loss, Mlp};

use crate::js;

mod training;

/// Matmul results against ndarray: f32 sums of up to a few hundred products in [-1, 1).
const MATMUL: Tolerance = Tolerance {
    atol: 1e-4,
    rtol: 1e-4,
};

/// The shapes `m×n×k` the matmul checks run: one element, odd sizes across the 64-wide tile and
/// a whole tile.
const MATMUL_SHAPES: [[usize; 3]; 4] = [[1, 1, 1], [17, 33, 65], [64, 64, 64], [65, 129, 31]];

/// The outcome of one check.
pub(crate) struct Check {
    pub name: String,
    pub worst: f32,
    pub detail: String,
}

impl Check {
    fn json(&self) -> Value {
        json!({
            "name": self.name,
            "ok": self.worst <= 1.0,
            "worst": if self.worst.is_finite() { json!(self.worst) } else { json!("NaN") },
            "detail": self.detail,
        })
    }
}

/// `(worst ratio, where)` of `got` against `want` under `tolerance`; NaN is infinitely bad.
pub(crate) fn closeness(got: &[f32], want: &[f32], tolerance: Tolerance) -> (f32, String) {
    if got.len() != want.len() {
        return (
            f32::INFINITY,
            format!("{} values, {} expected", got.len(), want.len()),
        );
    }
    let mut worst = (0.0f32, format!("all {} values equal", got.len()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let difference = (g - w).abs();
        let ratio = if difference.is_nan() {
            f32::INFINITY
        } else {
            difference / tolerance.allowed(w)
        };
        if ratio > worst.0 || (ratio.is_infinite() && worst.0.is_finite()) {
            worst = (ratio, format!("element {i}: {g:e} vs {w:e}"));
        }
    }
    worst
}

/// A `(rows, cols)` matrix of uniform values in [-1, 1), fixed by `seed`.
pub(crate) fn random_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform(-1.0, 1.0) as f32)
}

/// Targets a loss accepts: one-hot rows for cross-entropy, values in [0, 1) otherwise.
pub(crate) fn targets(loss: Loss, rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    match loss {
        Loss::CrossEntropy => {
            let mut y = Array2::zeros((rows, cols));
            for r in 0..rows {
                y[[r, rng.below(cols as u64) as usize]] = 1.0;
            }
            y
        }
        Loss::Mse | Loss::BinaryCrossEntropy => {
            Array2::from_shape_simple_fn((rows, cols), || rng.next_f64() as f32)
        }
    }
}

/// GPU gradients against the CPU reference on small networks whose sizes cross the matmul tiles;
/// `{worst_gpu_cpu, worst_ratio, ok, detail}`.
#[wasm_bindgen]
pub fn gradcheck(gpu: &crate::Gpu) -> js_sys::Promise {
    let gpu = gpu.gpu.clone();
    wasm_bindgen_futures::future_to_promise(async move {
        let (largest, check) = gradient_check(&gpu).await.map_err(js::error)?;
        Ok(js::object(&json!({
            "worst_gpu_cpu": largest,
            "worst_ratio": check.worst,
            "ok": check.worst <= 1.0,
            "detail": check.detail,
        }))?)
    })
}

/// The networks [`gradcheck`] compares, as `tests/gradients.rs` does across tile boundaries.
const GRADCHECK_NETS: [(&[usize], Activation, Activation, Loss); 3] = [
    (
        &[65, 63, 64, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
    ),
    (
        &[13, 17, 5],
        Activation::Sigmoid,
        Activation::Sigmoid,
        Loss::Mse,
    ),
    (
        &[200, 130, 3],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
    ),
];

/// The largest `|gpu − cpu|` of any gradient, and the check over every net and batch.
async fn gradient_check(gpu: &Gpu) -> Result<(f32, Check), Error> {
    let mut largest = 0.0f32;
    let mut check = Check {
        name: "gradients across tile boundaries".into(),
        worst: 0.0,
        detail: String::new(),
    };
    for (sizes, hidden, output, loss) in GRADCHECK_NETS {
        let mlp = Mlp::new(sizes, hidden, output, loss, 5)?;
        let mut net = GpuMlp::new(gpu, &mlp)?;
        for batch in [65, 1, 257, 63] {
            let what = format!("{sizes:?} batch {batch}");
            let (difference, ratio, detail) =
                compare_gradients(&mut net, &mlp, batch, &what).await?;
            largest = largest.max(difference);
            if ratio > check.worst || check.detail.is_empty() {
                (check.worst, check.detail) = (ratio, detail);
            }
        }
    }
    Ok((largest, check))
}

/// Loss and gradients of `net` and `mlp` on a random batch of `batch` rows: the largest
/// `|gpu − cpu|`, the worst ratio to the tolerance (loss included) and where it was.
pub(crate) async fn compare_gradients(
    net: &mut GpuMlp,
    mlp: &Mlp,
    batch: usize,
    what: &str,
) -> Result<(f32, f32, String), Error> {
    let x = random_matrix(batch, mlp.inputs(), batch as u64 * 31 + 1);
    let y = targets(mlp.loss, batch, mlp.outputs(), batch as u64 * 17 + 2);
    let (cpu_loss, cpu) = mlp.loss_and_gradients(x.view(), y.view())?;
    let (gpu_loss, on_gpu) = net.loss_and_gradients_async(x.view(), y.view()).await?;
    let comparison = gradcheck::compare(&on_gpu, &cpu, Tolerance::GPU_VS_CPU)?;
    let (loss_ratio, _) = closeness(&[gpu_loss], &[cpu_loss], Tolerance::GPU_VS_CPU);
    let gradient_ratio = match comparison.worst {
        Some(worst) => worst.ratio,
        None => 0.0,
    };
    let ratio = loss_ratio.max(gradient_ratio);
    let detail = format!("{what}: loss {gpu_loss:e} vs {cpu_loss:e}; {comparison}");
    Ok((comparison.largest_difference, ratio, detail))
}

/// Every check, in order: `[{name, ok, worst, detail}]`.
#[wasm_bindgen(js_name = runChecks)]
pub fn run_checks(gpu: &crate::Gpu) -> js_sys::Promise {
    let gpu = gpu.gpu.clone();
    wasm_bindgen_futures::future_to_promise(async move {
        let mut checks = matmul_checks(&gpu).await.map_err(js::error)?;
        checks.extend(gradient_checks(&gpu).await.map_err(js::error)?);
        checks.push(gradient_check(&gpu).await.map_err(js::error)?.1);
        checks.push(training::forward_check(&gpu).await.map_err(js::error)?);
        checks.extend(training::optimizer_checks(&gpu).await.map_err(js::error)?);
        checks.push(training::trainer_check(&gpu).await.map_err(js::error)?);
        Ok(js::object(&Value::Array(
            checks.iter().map(Check::json).collect(),
        ))?)
    })
}

/// Each variant of the matmul (forward `A·Bᵀ`, `dW = Aᵀ·B`, `δ = A·B`) with each kernel the
/// device runs, at every shape of [`MATMUL_SHAPES`].
async fn matmul_checks(gpu: &Gpu) -> Result<Vec<Check>, Error> {
    let mut checks = Vec::new();
    let strategies = [
        MatmulStrategy::RegisterBlocked,
        MatmulStrategy::Shuffled,
        MatmulStrategy::Tiled,
    ];
    for strategy in strategies {
        if gpu.config().check_strategy(strategy).is_err() {
            continue;
        }
        for (variant, role) in [
            (Matmul::NT, "A·Bᵀ (forward)"),
            (Matmul::TN, "Aᵀ·B (weight gradient)"),
            (Matmul::NN, "A·B (backward δ)"),
        ] {
            let mut check = Check {
                name: format!("matmul {strategy:?} {role}"),
                worst: 0.0,
                detail: String::new(),
            };
            for (i, [m, n, k]) in MATMUL_SHAPES.into_iter().enumerate() {
                let shape = MatmulShape { m, n, k };
                let variant = variant.with_strategy(strategy);
                let (ratio, at) = matmul_case(gpu, variant, shape, i as u64).await?;
                if ratio > check.worst {
                    check.worst = ratio;
                    check.detail = format!("worst at {m}×{n}×{k}: {at}");
                }
            }
            if check.detail.is_empty() {
                check.detail = "every element equal to ndarray's at every shape".into();
            }
            checks.push(check);
        }
    }
    Ok(checks)
}

/// Runs `variant` on random operands of `shape` and compares `C` with ndarray's product.
async fn matmul_case(
    gpu: &Gpu,
    variant: Matmul,
    shape: MatmulShape,
    seed: u64,
) -> Result<(f32, String), Error> {
    let MatmulShape { m, n, k } = shape;
    let stored = |transposed: bool, rows, cols, seed| {
        if transposed {
            random_matrix(cols, rows, seed)
        } else {
            random_matrix(rows, cols, seed)
        }
    };
    let a = stored(variant.transpose_a, m, k, seed * 2 + 1);
    let b = stored(variant.transpose_b, k, n, seed * 2 + 2);
    let operand = |matrix: &Array2<f32>, transposed: bool| -> Array2<f32> {
        if transposed {
            matrix.t().to_owned()
        } else {
            matrix.clone()
        }
    };
    let want = operand(&a, variant.transpose_a).dot(&operand(&b, variant.transpose_b));
    let upload = |label, values: ArrayView2<f32>| {
        gpu.storage_buffer_with(label, values.as_standard_layout().as_slice().unwrap_or(&[]))
    };
    let (a_buffer, b_buffer) = (upload("check.a", a.view())?, upload("check.b", b.view())?);
    let c = gpu.storage_buffer("check.c", m * n)?;
    let operands = MatmulOperands {
        a: &a_buffer,
        b: &b_buffer,
        c: &c,
    };
    let dispatch = variant.bind(gpu, "check.matmul", shape, operands, Epilogue::None)?;
    Dispatch::run_all_async(gpu, &[&dispatch]).await?;
    let got = gpu.read_f32_async(&c, m * n).await?;
    let want = want.as_standard_layout();
    Ok(closeness(&got, want.as_slice().unwrap_or(&[]), MATMUL))
}

/// Gradients for every output activation and loss a model may have, under every hidden
/// activation, at depths 1 and 2 and batches 1, 3 and 7: one check per (output, loss).
async fn gradient_checks(gpu: &Gpu) -> Result<Vec<Check>, Error> {
    let mut pairs: Vec<(Activation, Loss)> = Activation::ALL
        .iter()
        .filter(|a| !a.is_hidden_only())
        .map(|&a| (a, Loss::Mse))
        .collect();
    pairs.push((Activation::Softmax, Loss::CrossEntropy));
    pairs.push((Activation::Sigmoid, Loss::BinaryCrossEntropy));
    // Softmax only ends a network.
    let hidden: Vec<Activation> = Activation::ALL
        .into_iter()
        .filter(|&a| a != Activation::Softmax)
        .collect();
    let mut checks = Vec::new();
    for (seed, (output, loss)) in pairs.into_iter().enumerate() {
        let mut check = Check {
            name: format!("gradients: {} output, {} loss", output.name(), loss.name()),
            worst: 0.0,
            detail: String::new(),
        };
        for sizes in [&[13, 5][..], &[13, 17, 5][..]] {
            for &hidden in &hidden {
                let mlp = Mlp::new(sizes, hidden, output, loss, seed as u64)?;
                let mut net = GpuMlp::new(gpu, &mlp)?;
                for batch in [1, 3, 7] {
                    let what = format!("{sizes:?} {} hidden, batch {batch}", hidden.name());
                    let (_, ratio, detail) =
                        compare_gradients(&mut net, &mlp, batch, &what).await?;
                    if ratio > check.worst || check.detail.is_empty() {
                        (check.worst, check.detail) = (ratio, detail);
                    }
                }
            }
        }
        checks.push(check);
    }
    Ok(checks)
}

/// One of `src/bench.rs`'s workloads on this device: `{workload, samples_per_s, adapter, …}`.
#[wasm_bindgen]
pub fn bench(gpu: &crate::Gpu, workload: String, steps: usize) -> js_sys::Promise {
    let gpu = gpu.gpu.clone();
    wasm_bindgen_futures::future_to_promise(async move {
        let workload = match workload.to_ascii_uppercase().as_str() {
            "W1" => Workload::W1,
            "W2" => Workload::W2,
            _ => {
                return Err(js::error(Error::Invalid {
                    what: "workload".into(),
                    why: format!("{workload:?}; expected W1 or W2"),
                })
                .into());
            }
        };
        let samples = steps.max(1) * workload.config().batch_size;
        let report = bench_gpu_async(&gpu, workload, samples)
            .await
            .map_err(js::error)?;
        Ok(js::object(&json!({
            "workload": report.workload,
            "samples_per_s": report.samples_per_s,
            "adapter": report.adapter,
            "samples": report.samples,
            "seconds": report.seconds,
            "gflops": report.gflops,
            "first_step_s": report.first_step_s,
            "matmul": report.matmul.map(|m| format!("{m:?}")),
        }))?)
    })
}
