//! Inverted dropout (`torch.nn.Dropout`): during training each unit of a dropped activation is
//! zeroed with probability `p` and every kept unit is scaled by `1/(1 − p)`, so that the expected
//! activation is unchanged and evaluation needs no rescaling; evaluation and prediction never drop.
//!
//! The masks come from the counter-based Philox4x32-10 generator ([`crate::rng`]), so the CPU
//! reference and the GPU draw the same mask without sharing any state: under
//! `key = philox_key(seed)`, unit `u` (`row·width + column` within the batch) of dropout site
//! `site` at training step `step` (0-based, counted over the whole run, so it continues across
//! `--resume`; like the unit, taken modulo 2³²) reads the counter
//! `[u, site, step, DROPOUT_STREAM]` and is kept when `unit_uniform(word 0) ≥ p`. Site 0 is the
//! input `x`; site `l + 1` is hidden layer `l`'s activation `a_l`. `shaders/dropout.wgsl` is the
//! same rule.

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::rng::{philox_key, philox4x32_10, unit_uniform};

/// The counter word that sets dropout's draws apart from every other use of the generator
/// (ASCII "drop").
pub const DROPOUT_STREAM: u32 = 0x6472_6f70;

/// Dropout probabilities: on the input and on each hidden layer's activation. All zero is none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dropout {
    /// `--input-dropout`: the probability of zeroing each input feature.
    pub input: f32,
    /// `--dropout`: one probability per hidden layer (input side first), or empty for none.
    pub hidden: Vec<f32>,
}

impl Dropout {
    /// `--dropout`'s rates for a network of `hidden_layers`: one value stands for every hidden
    /// layer, a list must have one per hidden layer, and all zero is none.
    pub fn hidden_rates(rates: &[f32], hidden_layers: usize) -> Result<Vec<f32>> {
        let rates = match rates {
            [p] => vec![*p; hidden_layers],
            _ => rates.to_vec(),
        };
        let dropout = Dropout {
            input: 0.0,
            hidden: rates,
        };
        dropout.validate(hidden_layers)?;
        Ok(match dropout.hidden.iter().all(|&p| p == 0.0) {
            true => Vec::new(),
            false => dropout.hidden,
        })
    }

    /// The hidden rates as `--dropout` and the model file write them: comma-separated, `0` for
    /// none.
    pub fn hidden_text(&self) -> String {
        match self.hidden.is_empty() {
            true => "0".to_string(),
            false => self
                .hidden
                .iter()
                .map(f32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// Whether any unit is ever dropped.
    pub fn is_active(&self) -> bool {
        self.input > 0.0 || self.hidden.iter().any(|&p| p > 0.0)
    }

    /// The probability of hidden layer `l` (0 where none is given).
    pub fn hidden_rate(&self, l: usize) -> f32 {
        self.hidden.get(l).copied().unwrap_or(0.0)
    }

    /// Checks that every probability is in `[0, 1)`.
    pub fn check_ranges(&self) -> Result<()> {
        let check = |option: &str, p: f32| {
            if p.is_finite() && (0.0..1.0).contains(&p) {
                Ok(())
            } else {
                Err(Error::invalid(option, format!("{p} (must be in [0, 1))")))
            }
        };
        check("--input-dropout", self.input)?;
        self.hidden.iter().try_for_each(|&p| check("--dropout", p))
    }

    /// Checks the ranges and that there is one hidden probability per hidden layer (or none).
    pub fn validate(&self, hidden_layers: usize) -> Result<()> {
        self.check_ranges()?;
        if !self.hidden.is_empty() && self.hidden.len() != hidden_layers {
            return Err(Error::invalid(
                "--dropout",
                format!(
                    "{} values for a network with {hidden_layers} hidden layers (give one value \
                     for all, or one per hidden layer)",
                    self.hidden.len()
                ),
            ));
        }
        Ok(())
    }

    /// The masks of training step `step` (0-based over the run) for a batch of `rows` through
    /// a network of layer `widths = [inputs, hidden…, outputs]`.
    pub fn masks(&self, seed: u64, step: u64, rows: usize, widths: &[usize]) -> DropoutMasks {
        let key = philox_key(seed);
        let mask = |site: usize, p: f32| {
            (p > 0.0).then(|| dropout_mask(key, step, site, rows, widths[site], p))
        };
        let hidden_layers = widths.len().saturating_sub(2);
        DropoutMasks {
            input: mask(0, self.input),
            hidden: (0..hidden_layers)
                .map(|l| mask(l + 1, self.hidden_rate(l)))
                .collect(),
        }
    }
}

/// Parses `--dropout`'s value: one probability, or a comma-separated list of them.
pub fn parse_rates(text: &str) -> Result<Vec<f32>> {
    text.split(',')
        .map(|part| {
            let p: f32 = part.trim().parse().map_err(|_| {
                Error::invalid("--dropout", format!("{part:?} in {text:?} is not a number"))
            })?;
            if p.is_finite() && (0.0..1.0).contains(&p) {
                Ok(p)
            } else {
                Err(Error::invalid(
                    "--dropout",
                    format!("{p} (must be in [0, 1))"),
                ))
            }
        })
        .collect()
}

/// The factors one training step multiplies activations by: `1/(1 − p)` for a kept unit and 0
/// for a dropped one, `(batch, width)` per site, `None` where that site has no dropout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DropoutMasks {
    /// On `x`.
    pub input: Option<Array2<f32>>,
    /// On each hidden layer's activation.
    pub hidden: Vec<Option<Array2<f32>>>,
}

/// `1/(1 − p)`, the factor of a kept unit, rounded to f32 once, as the GPU receives it.
pub fn keep_scale(p: f32) -> f32 {
    1.0 / (1.0 - p)
}

/// Whether `unit` of dropout `site` is kept at `step` (the module's rule).
pub fn is_kept(key: [u32; 2], step: u64, site: usize, unit: usize, p: f32) -> bool {
    let counter = [unit as u32, site as u32, step as u32, DROPOUT_STREAM];
    unit_uniform(philox4x32_10(counter, key)[0]) >= p
}

/// The `(rows, width)` factors of `site` at `step`: [`keep_scale`] where kept, else 0.
pub fn dropout_mask(
    key: [u32; 2],
    step: u64,
    site: usize,
    rows: usize,
    width: usize,
    p: f32,
) -> Array2<f32> {
    let mut mask = Array2::zeros((rows, width));
    let units = mask
        .as_slice_mut()
        .expect("a new array is in standard layout");
    write_dropout_mask(key, step, site, p, units);
    mask
}

/// Writes the factors of `site` at `step` into `units`, unit `u` (`row·width + column`) at
/// `units[u]`: [`keep_scale`] where kept, else 0.
pub fn write_dropout_mask(key: [u32; 2], step: u64, site: usize, p: f32, units: &mut [f32]) {
    let scale = keep_scale(p);
    for (unit, factor) in units.iter_mut().enumerate() {
        *factor = match is_kept(key, step, site, unit, p) {
            true => scale,
            false => 0.0,
        };
    }
}
