//! Optimizers: how parameters move along their gradients, with PyTorch's semantics.
//!
//! [`OptimizerConfig`] describes the update; [`OptimizerState`] is the CPU implementation and the
//! reference for `shaders/optim.wgsl`. L2 weight decay is added to the gradient before the update
//! (`g = dp + weight_decay·p`), as `torch.optim.SGD` and `torch.optim.Adam` do; AdamW decays the
//! parameter itself instead (`p ← p − lr·λ·p`, then Adam on `dp`), as `torch.optim.AdamW` does.
//! [`clip_grad_norm`] is `torch.nn.utils.clip_grad_norm_`, applied before the update.

use ndarray::{Array1, Array2, ArrayViewD, ArrayViewMutD, Zip};

use crate::error::{Error, Result};
use crate::model::{Gradients, Mlp};

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `p ← p − lr·g`.
    Sgd,
    /// `v ← μ·v + g; p ← p − lr·v` (`torch.optim.SGD(momentum=μ)`).
    Momentum {
        /// μ, typically 0.9.
        momentum: f32,
    },
    /// Adam with bias-corrected moments (`torch.optim.Adam`).
    Adam {
        /// Decay of the first moment, typically 0.9.
        beta1: f32,
        /// Decay of the second moment, typically 0.999.
        beta2: f32,
        /// Added to `√v̂`, typically 1e-8.
        epsilon: f32,
    },
    /// Adam with decoupled weight decay (`torch.optim.AdamW`): `p ← p − lr·λ·p` with λ the
    /// config's `weight_decay`, then Adam's update from the raw gradient.
    AdamW {
        /// Decay of the first moment, typically 0.9.
        beta1: f32,
        /// Decay of the second moment, typically 0.999.
        beta2: f32,
        /// Added to `√v̂`, typically 1e-8.
        epsilon: f32,
    },
}

impl Optimizer {
    /// Momentum with μ = 0.9.
    pub const MOMENTUM: Optimizer = Optimizer::Momentum { momentum: 0.9 };
    /// Adam with PyTorch's defaults (β₁ 0.9, β₂ 0.999, ε 1e-8).
    pub const ADAM: Optimizer = Optimizer::Adam {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    };
    /// AdamW with PyTorch's defaults (β₁ 0.9, β₂ 0.999, ε 1e-8).
    pub const ADAMW: Optimizer = Optimizer::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    };
    /// The weight decay `torch.optim.AdamW` uses when none is given.
    pub const ADAMW_WEIGHT_DECAY: f32 = 0.01;

    /// The weight decay a run takes when none is given: [`Optimizer::ADAMW_WEIGHT_DECAY`] for
    /// AdamW, as `torch.optim.AdamW`, and `otherwise` for the other rules. The CLI and the page
    /// both ask here, so that the default is written once.
    pub fn default_weight_decay(self, otherwise: f32) -> f32 {
        match self {
            Optimizer::AdamW { .. } => Self::ADAMW_WEIGHT_DECAY,
            _ => otherwise,
        }
    }

    /// `sgd`, `momentum`, `adam` or `adamw`.
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum { .. } => "momentum",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdamW { .. } => "adamw",
        }
    }

    /// Parses [`Optimizer::name`], with the usual hyper-parameters.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "sgd" => Ok(Optimizer::Sgd),
            "momentum" => Ok(Optimizer::MOMENTUM),
            "adam" => Ok(Optimizer::ADAM),
            "adamw" => Ok(Optimizer::ADAMW),
            _ => Err(Error::invalid(
                "optimizer",
                format!("unknown optimizer {name:?}; expected one of sgd, momentum, adam, adamw"),
            )),
        }
    }

    /// How many state values it keeps per parameter (0, 1 or 2).
    pub fn state_per_parameter(self) -> usize {
        match self {
            Optimizer::Sgd => 0,
            Optimizer::Momentum { .. } => 1,
            Optimizer::Adam { .. } | Optimizer::AdamW { .. } => 2,
        }
    }
}

/// An update rule with its learning rate and weight decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// The rule.
    pub optimizer: Optimizer,
    /// The step size.
    pub learning_rate: f32,
    /// L2 penalty coefficient (0 for none); for [`Optimizer::AdamW`] the decoupled decay λ.
    pub weight_decay: f32,
}

impl OptimizerConfig {
    /// Plain SGD at `learning_rate`, no weight decay.
    pub fn sgd(learning_rate: f32) -> Self {
        OptimizerConfig {
            optimizer: Optimizer::Sgd,
            learning_rate,
            weight_decay: 0.0,
        }
    }

    /// Checks every hyper-parameter's range.
    pub fn validate(&self) -> Result<()> {
        let check = |what: &str, value: f32, ok: bool, rule: &str| {
            if value.is_finite() && ok {
                Ok(())
            } else {
                Err(Error::invalid(what, format!("{value} (must be {rule})")))
            }
        };
        check(
            "learning rate",
            self.learning_rate,
            self.learning_rate > 0.0,
            "a finite number > 0",
        )?;
        check(
            "weight decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "a finite number ≥ 0",
        )?;
        match self.optimizer {
            Optimizer::Sgd => Ok(()),
            Optimizer::Momentum { momentum } => check(
                "momentum",
                momentum,
                (0.0..1.0).contains(&momentum),
                "in [0, 1)",
            ),
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
                check("beta1", beta1, (0.0..1.0).contains(&beta1), "in [0, 1)")?;
                check("beta2", beta2, (0.0..1.0).contains(&beta2), "in [0, 1)")?;
                check("epsilon", epsilon, epsilon > 0.0, "a finite number > 0")
            }
        }
    }
}

/// The CPU optimizer: its moments per layer and the number of steps taken.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// Steps taken so far (Adam's `t` after the next step is `steps + 1`).
    pub steps: u64,
    /// Velocity (momentum) or first moment (Adam), per layer: `(weight-shaped, bias-shaped)`.
    pub moment1: Vec<(Array2<f32>, Array1<f32>)>,
    /// Second moment (Adam), per layer.
    pub moment2: Vec<(Array2<f32>, Array1<f32>)>,
}

impl OptimizerState {
    /// Zero moments shaped like `mlp`'s parameters.
    pub fn new(mlp: &Mlp) -> Self {
        let zeros = || {
            mlp.layers
                .iter()
                .map(|l| (Array2::zeros(l.weight.dim()), Array1::zeros(l.bias.len())))
                .collect()
        };
        OptimizerState {
            steps: 0,
            moment1: zeros(),
            moment2: zeros(),
        }
    }

    /// Updates `mlp` in place from `grads` by `config`'s rule.
    pub fn apply(
        &mut self,
        config: &OptimizerConfig,
        mlp: &mut Mlp,
        grads: &Gradients,
    ) -> Result<()> {
        config.validate()?;
        if grads.layers.len() != mlp.layers.len() || self.moment1.len() != mlp.layers.len() {
            return Err(Error::invalid(
                "gradients",
                format!(
                    "{} layers of gradients for a {}-layer model",
                    grads.layers.len(),
                    mlp.layers.len()
                ),
            ));
        }
        for (i, (layer, grad)) in mlp.layers.iter().zip(&grads.layers).enumerate() {
            if grad.dweight.dim() != layer.weight.dim() || grad.dbias.len() != layer.bias.len() {
                return Err(Error::shape(
                    format!("layer {i} dweight"),
                    grad.dweight.shape(),
                    format!("{:?}", layer.weight.shape()),
                ));
            }
        }
        self.steps += 1;
        let t = self.steps as i32;
        let OptimizerConfig {
            optimizer,
            learning_rate: lr,
            weight_decay: wd,
        } = *config;
        for (l, (layer, grad)) in mlp.layers.iter_mut().zip(&grads.layers).enumerate() {
            let (m1w, m1b) = &mut self.moment1[l];
            let (m2w, m2b) = &mut self.moment2[l];
            let pairs = [
                (
                    layer.weight.view_mut().into_dyn(),
                    grad.dweight.view().into_dyn(),
                    m1w.view_mut().into_dyn(),
                    m2w.view_mut().into_dyn(),
                ),
                (
                    layer.bias.view_mut().into_dyn(),
                    grad.dbias.view().into_dyn(),
                    m1b.view_mut().into_dyn(),
                    m2b.view_mut().into_dyn(),
                ),
            ];
            for (p, dp, m1, m2) in pairs {
                match optimizer {
                    Optimizer::Sgd => {
                        update(p, dp, m1, m2, |p, dp, _, _| *p -= lr * (dp + wd * *p))
                    }
                    Optimizer::Momentum { momentum } => update(p, dp, m1, m2, |p, dp, v, _| {
                        *v = flush_subnormal(momentum * *v + dp + wd * *p);
                        *p -= lr * *v;
                    }),
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
                        // Adam folds the decay into the gradient; AdamW shrinks the parameter.
                        let (l2, decoupled) = match optimizer {
                            Optimizer::AdamW { .. } => (0.0, 1.0 - lr * wd),
                            _ => (wd, 1.0),
                        };
                        // PyTorch's order, lr/c₁ · m / (√v/√c₂ + ε), with both corrections
                        // folded into per-step factors: a value then takes one division and
                        // one square root, the CPU's slowest operations. The factors are
                        // computed in f64: in f32, 1 − 0.999ᵗ loses four digits to cancellation.
                        let correction = |beta: f32| 1.0 - f64::from(beta).powi(t);
                        let step_size = (f64::from(lr) / correction(beta1)) as f32;
                        let inverse_root_c2 = correction(beta2).sqrt().recip() as f32;
                        update(p, dp, m1, m2, |p, dp, m, v| {
                            let g = dp + l2 * *p;
                            *p *= decoupled;
                            *m = flush_subnormal(beta1 * *m + (1.0 - beta1) * g);
                            *v = flush_subnormal(beta2 * *v + (1.0 - beta2) * g * g);
                            *p -= step_size * *m / (v.sqrt() * inverse_root_c2 + epsilon);
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// `x`, or 0 where `x` is subnormal. Moments decay geometrically while their gradient is 0 (a
/// pixel that is always blank, a dead unit) and would pass through the subnormal range, where
/// every x86 operation on them is an order of magnitude slower; a GPU that flushes subnormals
/// stores the same 0, and the update such a moment makes is below f32's resolution either way.
#[inline(always)]
fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE { 0.0 } else { x }
}

/// Applies `rule(p, dp, m1, m2)` to every parameter with its gradient and moments: over plain
/// slices where all four are in standard layout (as the trainers keep them), so that the loop
/// vectorizes, else through ndarray's `Zip`; the same operations on each element either way.
fn update(
    mut p: ArrayViewMutD<'_, f32>,
    dp: ArrayViewD<'_, f32>,
    mut m1: ArrayViewMutD<'_, f32>,
    mut m2: ArrayViewMutD<'_, f32>,
    rule: impl Fn(&mut f32, f32, &mut f32, &mut f32) + Sync,
) {
    let standard = [p.is_standard_layout(), dp.is_standard_layout()];
    if let ([true, true], Some(p), Some(m1), Some(m2)) = (
        standard,
        p.as_slice_mut(),
        m1.as_slice_mut(),
        m2.as_slice_mut(),
    ) {
        let dp = dp.as_slice().unwrap_or(&[]);
        return update_over_cores(p, dp, m1, m2, &rule);
    }
    Zip::from(p)
        .and(&dp)
        .and(m1)
        .and(m2)
        .for_each(|p, &dp, m1, m2| rule(p, dp, m1, m2));
}

/// Parameters of at least this many values are updated in one share per core: the update reads
/// and writes seven values a parameter from memory, and every core adds bandwidth; below it,
/// waking the other threads costs more than it saves.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_UPDATE: usize = 1 << 17;

/// [`update_widest`] over consecutive shares of the slices, one per core where they are long
/// enough: each value's update is the same wherever it runs.
fn update_over_cores(
    p: &mut [f32],
    dp: &[f32],
    m1: &mut [f32],
    m2: &mut [f32],
    rule: &(impl Fn(&mut f32, f32, &mut f32, &mut f32) + Sync),
) {
    #[cfg(not(target_arch = "wasm32"))]
    if p.len() >= PARALLEL_UPDATE && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        // Shares of whole cache lines (16 values), so that no two cores write one line.
        let share = p
            .len()
            .div_ceil(rayon::current_num_threads())
            .next_multiple_of(16);
        p.par_chunks_mut(share)
            .zip(dp.par_chunks(share))
            .zip(m1.par_chunks_mut(share))
            .zip(m2.par_chunks_mut(share))
            .for_each(|(((p, dp), m1), m2)| update_widest(p, dp, m1, m2, rule));
        return;
    }
    update_widest(p, dp, m1, m2, rule);
}

/// [`update_slices`] compiled for the widest vectors the CPU has: each lane runs the same IEEE
/// operations, so the results do not depend on the width.
fn update_widest(
    p: &mut [f32],
    dp: &[f32],
    m1: &mut [f32],
    m2: &mut [f32],
    rule: &impl Fn(&mut f32, f32, &mut f32, &mut f32),
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { update_slices_avx512(p, dp, m1, m2, rule) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { update_slices_avx2(p, dp, m1, m2, rule) };
        }
    }
    update_slices(p, dp, m1, m2, rule);
}

/// [`update`]'s loop over slices.
#[inline(always)]
fn update_slices(
    p: &mut [f32],
    dp: &[f32],
    m1: &mut [f32],
    m2: &mut [f32],
    rule: &impl Fn(&mut f32, f32, &mut f32, &mut f32),
) {
    for (((p, &dp), m1), m2) in p.iter_mut().zip(dp).zip(m1).zip(m2) {
        rule(p, dp, m1, m2);
    }
}

/// [`update_slices`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn update_slices_avx512(
    p: &mut [f32],
    dp: &[f32],
    m1: &mut [f32],
    m2: &mut [f32],
    rule: &impl Fn(&mut f32, f32, &mut f32, &mut f32),
) {
    update_slices(p, dp, m1, m2, rule);
}

/// [`update_slices`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn update_slices_avx2(
    p: &mut [f32],
    dp: &[f32],
    m1: &mut [f32],
    m2: &mut [f32],
    rule: &impl Fn(&mut f32, f32, &mut f32, &mut f32),
) {
    update_slices(p, dp, m1, m2, rule);
}

/// Scales `grads` in place so that their global L2 norm (every layer's weight and bias
/// gradients together) is at most `max_norm`, as `torch.nn.utils.clip_grad_norm_` does: by
/// `max_norm/(norm + 1e-6)` when that is below 1. Returns the norm before clipping. The squares
/// are summed in f64, so the norm is exact to f32 rounding for any model size.
pub fn clip_grad_norm(grads: &mut Gradients, max_norm: f32) -> f32 {
    let squares: f64 = grads
        .layers
        .iter()
        .flat_map(|g| g.dweight.iter().chain(&g.dbias))
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    let norm = squares.sqrt() as f32;
    let scale = (max_norm / (norm + 1e-6)).min(1.0);
    if scale < 1.0 {
        for layer in &mut grads.layers {
            layer.dweight *= scale;
            layer.dbias *= scale;
        }
    }
    norm
}

/// `--optimizer sgd|momentum|adam|adamw`, each with its usual hyper-parameters.
#[cfg(feature = "cli")]
impl clap::ValueEnum for Optimizer {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Optimizer::Sgd,
            Optimizer::MOMENTUM,
            Optimizer::ADAM,
            Optimizer::ADAMW,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}
