//! The optimizers against closed forms and against an f64 version written out here from
//! `torch.optim`'s definitions, on the CPU optimizer ([`OptimizerState`]) and on the GPU's update
//! kernels (through [`GpuMlp::set_optimizer`] and [`GpuMlp::train_step`]); neither side is
//! compared with the other.
//!
//! **A constant gradient** comes from one softmax layer with cross-entropy whose two logits are
//! 40 apart while the label is the smaller one. Softmax is then exactly one-hot in f32
//! (e^−40 ≈ 4e-18 vanishes beside 1), so δ = ∂L/∂z = a·Σy − y = (1, −1) for a batch of one, and
//! it stays so while the few steps here move the logits by well under 1. With the input
//! x = (1, 0), ∂L/∂b = (1, −1) and ∂L/∂W = δ·xᵀ = [[1, 0], [−1, 0]]: the first column of the
//! weight and the bias see a constant gradient of ±1, the second column a constant 0 (so only
//! weight decay moves it). Under a constant gradient g:
//! - momentum's velocity after t steps is `v_t = g·(1 + μ + … + μᵗ⁻¹) = g·(1 − μᵗ)/(1 − μ)`, and
//!   the parameter is `p_t = p_0 − lr·Σ_{k=1..t} v_k = p_0 − lr·g·(t − μ·(1 − μᵗ)/(1 − μ))/(1 − μ)`;
//! - Adam's moments are `m_t = g·(1 − β₁ᵗ)` and `v_t = g²·(1 − β₂ᵗ)`, so the bias-corrected
//!   `m̂ = g`, `v̂ = g²`, and every step moves the parameter by `lr·g/(|g| + ε)` (≈ lr·sign(g));
//! - SGD with weight decay λ takes `p ← p − lr·(g + λ·p)`, so `p_t + g/λ = (1 − lr·λ)ᵗ·(p_0 + g/λ)`.

mod common;

use common::{assert_all_close, gpu, random_matrix, targets01};
use wgpu_mlp::ndarray::{Array1, Array2, array};
use wgpu_mlp::optim::{Optimizer, OptimizerConfig, OptimizerState};
use wgpu_mlp::{Activation, Dense, GpuMlp, Loss, Mlp};

/// Where an optimizer runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Cpu,
    Gpu,
}

const SIDES: [Side; 2] = [Side::Cpu, Side::Gpu];

/// One step's inputs and targets.
type Batch = (Array2<f32>, Array2<f32>);

/// Steps of the constant-gradient runs.
const STEPS: usize = 8;
const LEARNING_RATE: f64 = 0.01;

/// Parameters of magnitude up to 10 in f32 after a few steps: each step rounds to f32's ulp there
/// (≈ 1e-6), so the closed forms hold to a few of those.
const PARAMETER_ATOL: f64 = 1e-5;

/// The parameters after every step and the optimizer's state at the end.
struct Run {
    /// Per step, every parameter in order: each layer's weight (row-major), then its bias.
    parameters: Vec<Vec<f64>>,
    state: OptimizerState,
}

fn flat(mlp: &Mlp) -> Vec<f64> {
    let mut values = Vec::new();
    for layer in &mlp.layers {
        values.extend(layer.weight.iter().map(|&w| f64::from(w)));
        values.extend(layer.bias.iter().map(|&b| f64::from(b)));
    }
    values
}

/// Trains a copy of `mlp` one step per batch under `config` on `side`.
fn run(side: Side, mlp: &Mlp, config: OptimizerConfig, batches: &[Batch]) -> Run {
    let mut parameters = Vec::new();
    match side {
        Side::Cpu => {
            let mut mlp = mlp.clone();
            let mut state = OptimizerState::new(&mlp);
            for (x, y) in batches {
                let (_, grads) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
                state.apply(&config, &mut mlp, &grads).unwrap();
                parameters.push(flat(&mlp));
            }
            Run { parameters, state }
        }
        Side::Gpu => {
            let mut net = GpuMlp::new(&gpu(), mlp).unwrap();
            net.set_optimizer(config).unwrap();
            for (x, y) in batches {
                net.train_step(x.view(), y.view(), config.learning_rate)
                    .unwrap();
                parameters.push(flat(&net.to_mlp().unwrap()));
            }
            let state = net.optimizer_state().unwrap();
            Run { parameters, state }
        }
    }
}

/// The saturated softmax layer of the module doc: parameters W = [[10, 0.5], [−10, −0.25]],
/// b = (10, −10), so z = (20, −20) for x = (1, 0), and the label is class 1.
fn saturated_softmax() -> (Mlp, Vec<Batch>) {
    let mlp = Mlp {
        layers: vec![Dense {
            weight: array![[10.0f32, 0.5], [-10.0, -0.25]],
            bias: Array1::from(vec![10.0f32, -10.0]),
            activation: Activation::Softmax,
        }],
        loss: Loss::CrossEntropy,
        leaky_slope: wgpu_mlp::DEFAULT_LEAKY_SLOPE,
    };
    let batch = (array![[1.0f32, 0.0]], array![[0.0f32, 1.0]]);
    (mlp, vec![batch; STEPS])
}

/// The constant gradient of [`saturated_softmax`], in [`flat`] order: W row 0, W row 1, b.
const CONSTANT_GRADIENT: [f64; 6] = [1.0, 0.0, -1.0, 0.0, 1.0, -1.0];

/// Moment 1 or 2 of a one-layer state, in [`flat`] order.
fn flat_moment(moments: &[(Array2<f32>, Array1<f32>)]) -> Vec<f64> {
    let (weight, bias) = &moments[0];
    weight
        .iter()
        .chain(bias.iter())
        .map(|&m| f64::from(m))
        .collect()
}

/// Runs `config` on both sides over [`saturated_softmax`] and checks every parameter after every
/// step `t` against `position(p_0, g, t)`; returns each side's run for checks of its state.
fn follows_closed_form(
    config: OptimizerConfig,
    position: impl Fn(f64, f64, f64) -> f64,
) -> Vec<(Side, Run)> {
    let (mlp, batches) = saturated_softmax();
    let p0 = flat(&mlp);
    SIDES
        .into_iter()
        .map(|side| {
            let run = run(side, &mlp, config, &batches);
            for (step, got) in run.parameters.iter().enumerate() {
                let t = (step + 1) as f64;
                let want: Vec<f64> = p0
                    .iter()
                    .zip(CONSTANT_GRADIENT)
                    .map(|(&p, g)| position(p, g, t))
                    .collect();
                let what = format!("{side:?} {config:?} step {t}");
                assert_all_close(&what, got, &want, PARAMETER_ATOL, 0.0);
            }
            assert_eq!(run.state.steps, STEPS as u64, "{side:?} steps");
            (side, run)
        })
        .collect()
}

#[test]
fn momentum_under_a_constant_gradient_has_the_geometric_velocity_and_position() {
    let mu = 0.9f64;
    let config = OptimizerConfig {
        optimizer: Optimizer::Momentum {
            momentum: mu as f32,
        },
        learning_rate: LEARNING_RATE as f32,
        weight_decay: 0.0,
    };
    // p_t = p_0 − lr·g·Σ_{k=1..t} (1 − μᵏ)/(1 − μ), the sum in closed form.
    let runs = follows_closed_form(config, |p0, g, t| {
        p0 - LEARNING_RATE * g * (t - mu * (1.0 - mu.powf(t)) / (1.0 - mu)) / (1.0 - mu)
    });
    let t = STEPS as f64;
    let velocity: Vec<f64> = CONSTANT_GRADIENT
        .iter()
        .map(|g| g * (1.0 - mu.powf(t)) / (1.0 - mu))
        .collect();
    for (side, run) in runs {
        let what = format!("{side:?} momentum velocity");
        assert_all_close(
            &what,
            &flat_moment(&run.state.moment1),
            &velocity,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn adam_under_a_constant_gradient_moves_every_parameter_by_the_learning_rate_each_step() {
    let (beta1, beta2, epsilon) = (0.9f64, 0.999f64, 1e-8f64);
    let config = OptimizerConfig {
        optimizer: Optimizer::Adam {
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            epsilon: epsilon as f32,
        },
        learning_rate: LEARNING_RATE as f32,
        weight_decay: 0.0,
    };
    // m̂ = g and v̂ = g²: each step is lr·g/(|g| + ε), and 0 where g is 0.
    let runs = follows_closed_form(config, |p0, g, t| {
        p0 - t * LEARNING_RATE * g / (g.abs() + epsilon)
    });
    let t = STEPS as f64;
    let m: Vec<f64> = CONSTANT_GRADIENT
        .iter()
        .map(|g| g * (1.0 - beta1.powf(t)))
        .collect();
    let v: Vec<f64> = CONSTANT_GRADIENT
        .iter()
        .map(|g| g * g * (1.0 - beta2.powf(t)))
        .collect();
    for (side, run) in runs {
        let (got_m, got_v) = (
            flat_moment(&run.state.moment1),
            flat_moment(&run.state.moment2),
        );
        assert_all_close(&format!("{side:?} Adam m"), &got_m, &m, 1e-7, 1e-5);
        assert_all_close(&format!("{side:?} Adam v"), &got_v, &v, 1e-9, 1e-4);
    }
}

#[test]
fn weight_decay_adds_lambda_times_the_parameter_to_the_gradient() {
    let lambda = 0.5f64;
    let config = OptimizerConfig {
        optimizer: Optimizer::Sgd,
        learning_rate: LEARNING_RATE as f32,
        weight_decay: lambda as f32,
    };
    // p_t = (1 − lr·λ)ᵗ·(p_0 + g/λ) − g/λ, which for g = 0 is (1 − lr·λ)ᵗ·p_0.
    follows_closed_form(config, |p0, g, t| {
        (1.0 - LEARNING_RATE * lambda).powf(t) * (p0 + g / lambda) - g / lambda
    });
}

#[test]
fn adamw_decays_the_parameter_itself_so_a_zero_gradient_shrinks_it_geometrically() {
    // torch.optim.AdamW: p ← p·(1 − lr·λ), then Adam from the raw gradient, whose bias-corrected
    // step under a constant g is lr·g/(|g| + ε). With a = 1 − lr·λ and c = lr·g/(|g| + ε),
    // p_t = a·p_{t−1} − c, so p_t = aᵗ·p_0 − c·(1 − aᵗ)/(1 − a); for g = 0 it is aᵗ·p_0, where
    // Adam's L2 form would move the parameter by about lr a step.
    let (lambda, epsilon) = (0.5f64, 1e-8f64);
    let config = OptimizerConfig {
        optimizer: Optimizer::ADAMW,
        learning_rate: LEARNING_RATE as f32,
        weight_decay: lambda as f32,
    };
    let a = 1.0 - LEARNING_RATE * lambda;
    follows_closed_form(config, |p0, g, t| {
        let c = LEARNING_RATE * g / (g.abs() + epsilon);
        a.powf(t) * p0 - c * (1.0 - a.powf(t)) / (1.0 - a)
    });
}

/// One step of `config` in f64 on flat parameters, as `torch.optim` documents it: the gradient
/// gets `λ·p`; SGD `p −= lr·g`; momentum `b = μ·b + g`, `p −= lr·b`; Adam `m = β₁m + (1−β₁)g`,
/// `v = β₂v + (1−β₂)g²`, `p −= lr·(m/(1−β₁ᵗ))/(√(v/(1−β₂ᵗ)) + ε)` at step `t` (1-based);
/// AdamW leaves the gradient alone and first takes `p −= lr·λ·p`.
fn step_f64(
    config: OptimizerConfig,
    t: i32,
    p: &mut [f64],
    gradient: &[f64],
    m: &mut [f64],
    v: &mut [f64],
) {
    let lr = f64::from(config.learning_rate);
    let lambda = f64::from(config.weight_decay);
    for i in 0..p.len() {
        let mut g = gradient[i] + lambda * p[i];
        if let Optimizer::AdamW { .. } = config.optimizer {
            g = gradient[i];
            p[i] -= lr * lambda * p[i];
        }
        match config.optimizer {
            Optimizer::Sgd => p[i] -= lr * g,
            Optimizer::Momentum { momentum } => {
                m[i] = f64::from(momentum) * m[i] + g;
                p[i] -= lr * m[i];
            }
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
            }
            | Optimizer::AdamW {
                beta1,
                beta2,
                epsilon,
            } => {
                let (b1, b2) = (f64::from(beta1), f64::from(beta2));
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let m_hat = m[i] / (1.0 - b1.powi(t));
                let v_hat = v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * m_hat / (v_hat.sqrt() + f64::from(epsilon));
            }
        }
    }
}

/// The gradient of the mean squared error of one identity layer, in f64 and [`flat`] order:
/// with z = x·Wᵀ + b and δ = 2(z − y)/(batch·outputs), ∂L/∂W = δᵀ·x and ∂L/∂b = Σ_rows δ.
fn linear_mse_gradient(
    p: &[f64],
    inputs: usize,
    outputs: usize,
    x: &Array2<f32>,
    y: &Array2<f32>,
) -> Vec<f64> {
    let (weight, bias) = p.split_at(inputs * outputs);
    let batch = x.nrows();
    let mut gradient = vec![0.0; p.len()];
    for r in 0..batch {
        for o in 0..outputs {
            let z: f64 = bias[o]
                + (0..inputs)
                    .map(|i| weight[o * inputs + i] * f64::from(x[[r, i]]))
                    .sum::<f64>();
            let delta = 2.0 * (z - f64::from(y[[r, o]])) / (batch * outputs) as f64;
            for i in 0..inputs {
                gradient[o * inputs + i] += delta * f64::from(x[[r, i]]);
            }
            gradient[inputs * outputs + o] += delta;
        }
    }
    gradient
}

/// One identity layer under the mean squared error, with random parameters from `seed`.
fn linear_model(inputs: usize, outputs: usize, seed: u64) -> Mlp {
    Mlp {
        layers: vec![Dense {
            weight: random_matrix(outputs, inputs, seed),
            bias: random_matrix(1, outputs, seed + 1).row(0).to_owned(),
            activation: Activation::Identity,
        }],
        loss: Loss::Mse,
        leaky_slope: wgpu_mlp::DEFAULT_LEAKY_SLOPE,
    }
}

#[test]
fn a_few_steps_with_varying_gradients_match_an_f64_version_of_every_optimizer() {
    let (inputs, outputs, batch) = (3, 2, 5);
    let mlp = linear_model(inputs, outputs, 1);
    // A different batch each step: the gradient changes with the data and with the parameters.
    let batches: Vec<Batch> = (0..4)
        .map(|s| {
            (
                random_matrix(batch, inputs, 10 + s),
                targets01(batch, outputs, 20 + s),
            )
        })
        .collect();
    for optimizer in [
        Optimizer::Sgd,
        Optimizer::Momentum { momentum: 0.9 },
        Optimizer::ADAM,
        Optimizer::ADAMW,
    ] {
        for weight_decay in [0.0, 0.1] {
            let config = OptimizerConfig {
                optimizer,
                learning_rate: 0.05,
                weight_decay,
            };
            let mut p = flat(&mlp);
            let mut m = vec![0.0; p.len()];
            let mut v = vec![0.0; p.len()];
            let mut want = Vec::new();
            for (t, (x, y)) in batches.iter().enumerate() {
                let gradient = linear_mse_gradient(&p, inputs, outputs, x, y);
                step_f64(config, t as i32 + 1, &mut p, &gradient, &mut m, &mut v);
                want.push(p.clone());
            }
            for side in SIDES {
                let run = run(side, &mlp, config, &batches);
                for (t, (got, want)) in run.parameters.iter().zip(&want).enumerate() {
                    assert_all_close(
                        &format!("{side:?} {config:?} step {}", t + 1),
                        got,
                        want,
                        2e-6,
                        1e-5,
                    );
                }
            }
        }
    }
}

#[test]
fn moments_that_decay_below_the_smallest_normal_float_are_stored_as_zero() {
    // Under a zero gradient a moment only decays: m ← β·m (momentum 0.9 or Adam's β₁ = 0.9),
    // so mₖ = 0.9ᵏ·m₀ until it would leave the normal range, and 0 from then on. Adam's
    // v = 0.999ᵏ·v₀ stays normal for the 22 steps here (0.999²² ≈ 0.978 of 2·MIN_POSITIVE).
    let tiny = f32::MIN_POSITIVE;
    let mlp = Mlp::new(
        &[1, 1],
        Activation::Identity,
        Activation::Identity,
        Loss::Mse,
        0,
    )
    .unwrap();
    let grads = wgpu_mlp::fast::zero_gradients(&mlp);
    for optimizer in [Optimizer::MOMENTUM, Optimizer::ADAM] {
        let config = OptimizerConfig {
            optimizer,
            learning_rate: 1e-3,
            weight_decay: 0.0,
        };
        let mut state = OptimizerState::new(&mlp);
        state.moment1[0].0.fill(10.0 * tiny);
        state.moment2[0].0.fill(2.0 * tiny);
        let mut model = mlp.clone();
        // 10·0.9ᵏ·MIN_POSITIVE is normal for k ≤ 21 (0.9²¹ ≈ 0.109) and subnormal from k = 22.
        for step in 1..=22 {
            state.apply(&config, &mut model, &grads).unwrap();
            let m = state.moment1[0].0[[0, 0]];
            let expected = 10.0 * 0.9f64.powi(step) * f64::from(tiny);
            if expected >= f64::from(tiny) {
                assert!(
                    (f64::from(m) / expected - 1.0).abs() < 1e-5,
                    "{optimizer:?} step {step}: {m}"
                );
            } else {
                assert_eq!(
                    m, 0.0,
                    "{optimizer:?} step {step}: a subnormal moment was kept"
                );
            }
        }
        if matches!(optimizer, Optimizer::Adam { .. }) {
            let v = f64::from(state.moment2[0].0[[0, 0]]);
            assert!((v / (2.0 * 0.999f64.powi(22) * f64::from(tiny)) - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn an_update_split_over_the_cores_matches_an_f64_version_value_for_value() {
    // 363 × 367 = 133,221 weights: above the 2¹⁷ values from which the CPU optimizer gives each
    // core a share, and odd, so that the last share is short. Random gradients, given directly,
    // over three steps: every weight must follow `step_f64`, the ones at the shares' seams too.
    let (outputs, inputs) = (363, 367);
    let mlp = linear_model(inputs, outputs, 3);
    for optimizer in [Optimizer::Momentum { momentum: 0.9 }, Optimizer::ADAM] {
        let config = OptimizerConfig {
            optimizer,
            learning_rate: 0.05,
            weight_decay: 0.1,
        };
        let mut model = mlp.clone();
        let mut state = OptimizerState::new(&model);
        let mut p = flat(&model);
        let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        for t in 1..=3 {
            let grads = wgpu_mlp::model::Gradients {
                layers: vec![wgpu_mlp::model::DenseGradients {
                    dweight: random_matrix(outputs, inputs, 10 + t),
                    dbias: random_matrix(1, outputs, 20 + t).row(0).to_owned(),
                }],
            };
            let gradient: Vec<f64> = grads.layers[0]
                .dweight
                .iter()
                .chain(&grads.layers[0].dbias)
                .map(|&g| f64::from(g))
                .collect();
            state.apply(&config, &mut model, &grads).unwrap();
            step_f64(config, t as i32, &mut p, &gradient, &mut m, &mut v);
            assert_all_close(
                &format!("{optimizer:?} step {t}"),
                &flat(&model),
                &p,
                2e-6,
                1e-5,
            );
        }
    }
}
