//! The settings a new model trains with when nothing else is asked for: those that suit the
//! user's task ([`Defaults::for_task`]: ReLU hidden units with He initialisation, Adam at 1e-3,
//! softmax + cross-entropy for classes, identity + mean squared error for values), and the
//! tutorial's network one call away ([`Defaults::tutorial`]: sigmoid everywhere, mean squared
//! error, plain SGD at 0.5), which is also what a model file that records fewer settings was
//! trained with ([`Defaults::UNRECORDED`]). The CLI's `train` and the browser page take theirs
//! from here, so that a library user gets the same. `docs/defaults.md` has the measurements
//! behind the numbers.

use crate::data::files::Task;
use crate::error::Result;
use crate::model::{Activation, DEFAULT_LEAKY_SLOPE, Init, Loss, Mlp};
use crate::optim::{Optimizer, OptimizerConfig};

use super::{Regularization, TrainConfig};

/// The seed of a new model's weights and of the shuffles when none is given.
pub const DEFAULT_SEED: u64 = 42;

/// The hidden layer sizes of a new model when none are given: one layer of 128 units.
pub const DEFAULT_HIDDEN_SIZES: [usize; 1] = [128];

/// The most epochs [`Defaults::steps`] asks for (as scikit-learn's `max_iter`), for a tiny set.
pub const MAX_DEFAULT_EPOCHS: usize = 200;

/// Everything a new model trains with, short of its layer sizes and seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Defaults {
    /// What the outputs are: classes or values.
    pub task: Task,
    /// The activation of every hidden layer.
    pub hidden: Activation,
    /// The activation of the output layer.
    pub output: Activation,
    /// The loss.
    pub loss: Loss,
    /// How the initial weights are drawn ([`Init::Auto`]: He for ReLU layers, Xavier otherwise).
    pub init: Init,
    /// Leaky ReLU's negative slope, for a `hidden` leaky ReLU ([`DEFAULT_LEAKY_SLOPE`]).
    pub leaky_slope: f32,
    /// The update rule, learning rate and weight decay.
    pub optimizer: OptimizerConfig,
    /// Samples per step.
    pub batch_size: usize,
    /// Epochs to train at the least ([`Defaults::epochs_for`]).
    pub epochs: usize,
    /// Steps to train at the least, up to [`MAX_DEFAULT_EPOCHS`] epochs, for a small data set
    /// (0 for none).
    pub steps: usize,
}

impl Defaults {
    /// What a model file that records its architecture but not its optimizer, learning rate,
    /// weight decay or batch was trained with: such files predate the task defaults, when every
    /// default was the tutorial's, so they continue as they were trained.
    pub const UNRECORDED: Defaults = Defaults::tutorial(Task::Classification);

    /// The defaults for `task`: ReLU hidden units with He initialisation and Adam at 1e-3 (as
    /// scikit-learn's `MLPClassifier` and `MLPRegressor`), in batches of 64 for at least 10
    /// epochs and 5,000 steps; for classes a softmax output with the cross-entropy, so the outputs are probabilities; for
    /// values an identity output with the mean squared error.
    pub const fn for_task(task: Task) -> Defaults {
        let (output, loss) = match task {
            Task::Classification => (Activation::Softmax, Loss::CrossEntropy),
            Task::Regression => (Activation::Identity, Loss::Mse),
        };
        Defaults {
            task,
            hidden: Activation::Relu,
            output,
            loss,
            init: Init::Auto,
            leaky_slope: DEFAULT_LEAKY_SLOPE,
            optimizer: OptimizerConfig {
                optimizer: Optimizer::ADAM,
                learning_rate: 1e-3,
                weight_decay: 0.0,
            },
            batch_size: 64,
            epochs: 10,
            steps: 5_000,
        }
    }

    /// The tutorial's network for `task`, which every default was before: sigmoid hidden units
    /// and the mean squared error (of a sigmoid output for classes, an identity output for
    /// values), trained by plain SGD at 0.5 in batches of 64 for 5 epochs.
    pub const fn tutorial(task: Task) -> Defaults {
        let output = match task {
            Task::Classification => Activation::Sigmoid,
            Task::Regression => Activation::Identity,
        };
        Defaults {
            task,
            hidden: Activation::Sigmoid,
            output,
            loss: Loss::Mse,
            init: Init::Auto,
            leaky_slope: DEFAULT_LEAKY_SLOPE,
            optimizer: OptimizerConfig {
                optimizer: Optimizer::Sgd,
                learning_rate: 0.5,
                weight_decay: 0.0,
            },
            batch_size: 64,
            epochs: 5,
            steps: 0,
        }
    }

    /// The loss of a model whose options name its `output` and `loss` or leave them out: the one
    /// named, else these defaults' if it suits the output, else the mean squared error, which
    /// suits every output.
    pub fn loss_for(&self, output: Option<Activation>, loss: Option<Loss>) -> Loss {
        loss.unwrap_or(match (output, self.loss.required_output()) {
            (Some(asked), Some(required)) if asked != required => Loss::Mse,
            _ => self.loss,
        })
    }

    /// The output activation of a model trained with `loss` whose options name its `output` or
    /// leave it out: the one named, else for values these defaults' (identity), else for classes
    /// the one the loss requires, or a sigmoid for the mean squared error, which requires none.
    pub fn output_for(&self, output: Option<Activation>, loss: Loss) -> Activation {
        output.unwrap_or(match self.task {
            Task::Regression => self.output,
            Task::Classification => loss.required_output().unwrap_or(Activation::Sigmoid),
        })
    }

    /// The epochs to train `samples` samples in batches of `batch_size`: [`Defaults::epochs`],
    /// or more to make [`Defaults::steps`] steps, but not over [`MAX_DEFAULT_EPOCHS`]. Adam at
    /// 1e-3 converges in about as many steps whatever the set's size, so a set of 4,000 rows
    /// needs 80 epochs where MNIST's 60,000 images need 10.
    pub fn epochs_for(&self, samples: usize, batch_size: usize) -> usize {
        let steps_per_epoch = samples.div_ceil(batch_size.max(1)).max(1);
        let for_steps = self.steps.div_ceil(steps_per_epoch).min(MAX_DEFAULT_EPOCHS);
        self.epochs.max(for_steps)
    }

    /// A new seeded model of layer sizes `sizes` with these activations, loss, initialisation
    /// and leaky slope.
    pub fn mlp(&self, sizes: &[usize], seed: u64) -> Result<Mlp> {
        Mlp::with_init_and_leaky_slope(
            sizes,
            self.hidden,
            self.output,
            self.loss,
            self.init,
            self.leaky_slope,
            seed,
        )
    }

    /// The training configuration of these defaults with `seed`.
    pub fn train_config(&self, seed: u64) -> TrainConfig {
        TrainConfig {
            optimizer: self.optimizer,
            batch_size: self.batch_size,
            seed,
            regularization: Regularization::default(),
        }
    }
}

impl TrainConfig {
    /// The defaults for `task` ([`Defaults::for_task`]): Adam at 1e-3, batches of 64, seed 42.
    pub fn for_task(task: Task) -> TrainConfig {
        Defaults::for_task(task).train_config(DEFAULT_SEED)
    }
}

impl Default for TrainConfig {
    /// The defaults of both tasks ([`TrainConfig::for_task`]): Adam at 1e-3, batches of 64,
    /// seed 42.
    fn default() -> Self {
        TrainConfig::for_task(Task::Classification)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epochs_are_ten_or_those_that_make_5000_steps_up_to_200() {
        let defaults = Defaults::for_task(Task::Classification);
        // (samples, batch): the epochs counted by stepping through epochs until 5,000 steps are made.
        for (samples, batch) in [
            (60_000_usize, 64_usize),
            (10_000, 64),
            (4_000, 64),
            (8_000, 64),
            (3, 64),
        ] {
            let steps_per_epoch = samples.div_ceil(batch);
            let mut epochs = 0;
            while epochs * steps_per_epoch < 5_000 && epochs < 200 {
                epochs += 1;
            }
            assert_eq!(
                defaults.epochs_for(samples, batch),
                epochs.max(10),
                "{samples} samples in batches of {batch}"
            );
        }
        assert_eq!(defaults.epochs_for(60_000, 64), 10);
        assert_eq!(defaults.epochs_for(4_000, 64), 80);
        assert_eq!(
            Defaults::tutorial(Task::Classification).epochs_for(4_000, 64),
            5
        );
    }

    #[test]
    fn a_named_output_or_loss_brings_its_partner() {
        let classes = Defaults::for_task(Task::Classification);
        let cross_entropy = classes.loss_for(None, None);
        assert_eq!(cross_entropy, Loss::CrossEntropy);
        assert_eq!(classes.output_for(None, cross_entropy), Activation::Softmax);
        let sigmoid = Some(Activation::Sigmoid);
        assert_eq!(classes.loss_for(sigmoid, None), Loss::Mse);
        assert_eq!(classes.output_for(None, Loss::Mse), Activation::Sigmoid);
        let bce = Loss::BinaryCrossEntropy;
        assert_eq!(classes.output_for(None, bce), Activation::Sigmoid);

        let values = Defaults::for_task(Task::Regression);
        assert_eq!(values.loss_for(sigmoid, None), Loss::Mse);
        assert_eq!(values.output_for(None, Loss::Mse), Activation::Identity);

        let tutorial = Defaults::tutorial(Task::Classification);
        assert_eq!(tutorial.loss_for(None, None), Loss::Mse);
        assert_eq!(tutorial.output_for(None, Loss::Mse), Activation::Sigmoid);
        let softmax = tutorial.output_for(None, Loss::CrossEntropy);
        assert_eq!(softmax, Activation::Softmax);
    }

    #[test]
    fn the_train_config_default_is_adam_at_1e_3_in_batches_of_64() {
        let config = TrainConfig::default();
        assert_eq!(config.optimizer.optimizer, Optimizer::ADAM);
        assert_eq!(config.optimizer.learning_rate, 1e-3);
        assert_eq!(config.batch_size, 64);
        assert_eq!(config.seed, 42);
        assert_eq!(TrainConfig::for_task(Task::Regression), config);
        let mlp = Defaults::for_task(Task::Classification)
            .mlp(&[4, 3, 2], 1)
            .unwrap();
        let activations: Vec<_> = mlp.layers.iter().map(|l| l.activation).collect();
        assert_eq!(activations, [Activation::Relu, Activation::Softmax]);
        // He's limit, √(6 / fan-in), bounds the ReLU layer's weights, and Xavier's the output's.
        let he = (6.0f32 / 4.0).sqrt();
        assert!(mlp.layers[0].weight.iter().all(|w| w.abs() <= he));
        assert!(
            mlp.layers[0]
                .weight
                .iter()
                .any(|w| w.abs() > (6.0f32 / 7.0).sqrt())
        );
    }
}
