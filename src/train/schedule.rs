//! Learning-rate schedules and early stopping, epoch by epoch, as Keras's callbacks and
//! PyTorch's `lr_scheduler` define them.
//!
//! A schedule gives each epoch's learning rate; the trainer writes it into the optimizer's
//! uniform before the epoch ([`super::Trainer::set_learning_rate`]), so a step stays one
//! submission with nothing read back.

use std::f64::consts::PI;

use crate::error::{Error, Result};

/// How the learning rate changes after the warm-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScheduleKind {
    /// The base rate throughout.
    Constant,
    /// Multiplied by `gamma` every `every` epochs (PyTorch's `StepLR`).
    Step {
        /// Epochs between drops.
        every: usize,
        /// The factor of each drop.
        gamma: f32,
    },
    /// Half a cosine from the base rate down to 0 over the remaining epochs (PyTorch's
    /// `CosineAnnealingLR` with `eta_min = 0`).
    Cosine,
}

/// A learning rate for each 1-based epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    /// The rate the schedule starts from (after the warm-up).
    pub base: f32,
    /// The shape after the warm-up.
    pub kind: ScheduleKind,
    /// Epochs of linear warm-up: epoch `e ≤ warmup` trains at `base · e / (warmup + 1)`.
    pub warmup: usize,
    /// Epochs in the whole run, which the cosine spans.
    pub epochs: usize,
}

impl LrSchedule {
    /// The base rate throughout.
    pub fn constant(base: f32) -> LrSchedule {
        LrSchedule {
            base,
            kind: ScheduleKind::Constant,
            warmup: 0,
            epochs: 1,
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        if let ScheduleKind::Step { every, gamma } = self.kind {
            if every == 0 {
                return Err(Error::invalid("--lr-step", "0 (must be at least 1 epoch)"));
            }
            if !(gamma.is_finite() && gamma > 0.0) {
                return Err(Error::invalid(
                    "--lr-gamma",
                    format!("{gamma} (must be a finite number > 0)"),
                ));
            }
        }
        Ok(())
    }

    /// The learning rate of 1-based `epoch`.
    pub fn learning_rate(&self, epoch: usize) -> f32 {
        let base = f64::from(self.base);
        if epoch <= self.warmup {
            return (base * epoch as f64 / (self.warmup + 1) as f64) as f32;
        }
        // Epochs since the warm-up, from 0.
        let t = (epoch - self.warmup - 1) as f64;
        let rate = match self.kind {
            ScheduleKind::Constant => base,
            ScheduleKind::Step { every, gamma } => {
                base * f64::from(gamma).powi((t as usize / every) as i32)
            }
            ScheduleKind::Cosine => {
                let span = self.epochs.saturating_sub(self.warmup).max(1) as f64;
                base * (1.0 + (PI * t / span).cos()) / 2.0
            }
        };
        rate as f32
    }
}

/// Stops training once the validation loss has not improved for `patience` epochs, remembering
/// the best epoch (as Keras's `EarlyStopping`: an improvement is a loss lower than the best by
/// more than `min_delta`, 0 unless given).
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    patience: usize,
    min_delta: f32,
    best: Option<(usize, f32)>,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without a lower validation loss.
    pub fn new(patience: usize) -> EarlyStopping {
        EarlyStopping::with_tolerance(patience, 0.0)
    }

    /// Stops after `patience` epochs without a validation loss lower than the best by more
    /// than `min_delta` (scikit-learn's `tol`).
    pub fn with_tolerance(patience: usize, min_delta: f32) -> EarlyStopping {
        EarlyStopping {
            patience,
            min_delta,
            best: None,
        }
    }

    /// Records `epoch`'s validation loss; whether it is the best so far.
    pub fn record(&mut self, epoch: usize, loss: f32) -> bool {
        let improved = self
            .best
            .is_none_or(|(_, best)| loss < best - self.min_delta);
        if improved {
            self.best = Some((epoch, loss));
        }
        improved
    }

    /// The best epoch and its loss so far.
    pub fn best(&self) -> Option<(usize, f32)> {
        self.best
    }

    /// Whether `patience` epochs have passed since the best, at `epoch`.
    pub fn should_stop(&self, epoch: usize) -> bool {
        self.best
            .is_some_and(|(best, _)| epoch.saturating_sub(best) >= self.patience)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, warmup: usize) -> LrSchedule {
        LrSchedule {
            base: 0.1,
            kind,
            warmup,
            epochs: 10,
        }
    }

    #[test]
    fn step_drops_by_gamma_every_step_as_torch_step_lr() {
        // torch.optim.lr_scheduler.StepLR(step_size=3, gamma=0.5) from lr 0.1, epochs 1..=7:
        // 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025.
        let s = schedule(
            ScheduleKind::Step {
                every: 3,
                gamma: 0.5,
            },
            0,
        );
        let got: Vec<f32> = (1..=7).map(|e| s.learning_rate(e)).collect();
        assert_eq!(got, [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]);
    }

    #[test]
    fn cosine_follows_torch_cosine_annealing() {
        // CosineAnnealingLR(T_max=10, eta_min=0): lr_t = 0.1 · (1 + cos(π t / 10)) / 2.
        let s = schedule(ScheduleKind::Cosine, 0);
        let expected = [
            0.1,
            0.097_552_83,
            0.090_450_85,
            0.079_389_26,
            0.065_450_85,
            0.05,
        ];
        for (epoch, want) in (1..).zip(expected) {
            let got = s.learning_rate(epoch);
            assert!((got - want).abs() < 1e-7, "epoch {epoch}: {got} vs {want}");
        }
        assert!(s.learning_rate(10) < 0.003);
    }

    #[test]
    fn warmup_ramps_linearly_to_the_base_rate() {
        let s = schedule(ScheduleKind::Constant, 3);
        let got: Vec<f32> = (1..=5).map(|e| s.learning_rate(e)).collect();
        assert_eq!(got, [0.025, 0.05, 0.075, 0.1, 0.1]);
        let cosine = schedule(ScheduleKind::Cosine, 2);
        assert_eq!(cosine.learning_rate(3), 0.1);
    }

    #[test]
    fn early_stopping_waits_patience_epochs_after_the_best() {
        let mut stopping = EarlyStopping::new(2);
        let losses = [1.0, 0.8, 0.9, 0.85, 0.7];
        let mut stopped_at = None;
        for (epoch, loss) in (1..).zip(losses) {
            stopping.record(epoch, loss);
            if stopping.should_stop(epoch) {
                stopped_at = Some(epoch);
                break;
            }
        }
        assert_eq!(stopped_at, Some(4));
        assert_eq!(stopping.best(), Some((2, 0.8)));
    }
}
