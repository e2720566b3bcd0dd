//! [`TrainSpec`]: every setting a training run takes, each `None` (or `false`) for the default
//! the library chooses — the task defaults of [`crate::train::defaults`], or what a resumed
//! model records. The CLI's `train` options, the page's settings object and the Python
//! estimators' parameters all fill one of these; what each setting means is written here once.

use std::path::PathBuf;
use std::str::FromStr;

use ndarray::Array2;

use crate::augment::Augmentation;
use crate::checkpoint::CheckpointInfo;
use crate::data::files::Task;
use crate::data::{Dataset, DatasetKind, Features, Targets};
use crate::error::{Error, Result};
use crate::gpu::AdapterChoice;
use crate::model::{Activation, Init, Loss, Mlp};
use crate::optim::{Optimizer, OptimizerState};
use crate::train::DataPlacement;

/// Where a run's samples come from.
#[derive(Clone, Debug)]
pub enum Data {
    /// A built-in data set; MNIST and Fashion-MNIST are read from `dir` (default: the first of
    /// `$WGPU_MLP_DATA/<dataset>`, `$WGPU_MLP_DATA`, `./data/<dataset>` that holds them, see
    /// [`crate::data::find_data_dir`]). `None` for a resumed model is the set it records, and
    /// for a new one the synthetic set.
    Builtin {
        /// The data set.
        kind: Option<DatasetKind>,
        /// The folder of its IDX files.
        dir: Option<PathBuf>,
    },
    /// The user's files: `.npz` (arrays `x` and `y`), `.csv` (with a header row) or IDX images,
    /// and optionally a test file of the same format and features.
    Files {
        /// The training file.
        train: PathBuf,
        /// The test file.
        test: Option<PathBuf>,
    },
    /// Samples in memory: features `x [n, features]` (floats, or bytes that are divided by
    /// 255) and their targets — class labels
    /// ([`Targets::Classes`]) or values `[n, k]` ([`Targets::Values`]) — with an optional test
    /// set of the same widths. `name` is how summaries name them.
    Arrays {
        /// The training features.
        x: Features,
        /// The training targets.
        y: Targets,
        /// Test features and targets.
        test: Option<(Features, Targets)>,
        /// The name reports give the data.
        name: String,
    },
    /// Data sets already made (IDX bytes parsed in a browser, the synthetic set): used as they
    /// are, byte features divided by 255 as always.
    Sets {
        /// The training set.
        train: Dataset,
        /// The test set.
        test: Option<Dataset>,
        /// The name reports give the data (`mnist`, `synthetic`, …).
        name: String,
    },
}

impl Default for Data {
    /// The synthetic set, or the data a resumed model records.
    fn default() -> Self {
        Data::Builtin {
            kind: None,
            dir: None,
        }
    }
}

impl Data {
    /// In-memory classification data: features `x [n, features]` and a class label per row,
    /// with `classes` at least the largest label + 1 (`None`: exactly that).
    pub fn classes(x: Array2<f32>, labels: Vec<u32>, classes: Option<usize>) -> Data {
        let classes = classes.unwrap_or_else(|| labels.iter().max().map_or(0, |&m| m as usize + 1));
        Data::Arrays {
            x: x.into(),
            y: Targets::Classes {
                labels: labels.into(),
                classes,
            },
            test: None,
            name: "arrays".into(),
        }
    }

    /// In-memory regression data: features `x [n, features]` and targets `y [n, k]`.
    pub fn values(x: Array2<f32>, y: Array2<f32>) -> Data {
        Data::Arrays {
            x: x.into(),
            y: Targets::Values(y),
            test: None,
            name: "arrays".into(),
        }
    }
}

/// How a run's samples are read, split and scaled; each `None` for the default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataOptions {
    /// The CSV column to predict (default: the last).
    pub target: Option<String>,
    /// Classification or regression (default: classes for integer targets, else regression).
    pub task: Option<Task>,
    /// Classes, when there are more than the largest label + 1.
    pub classes: Option<usize>,
    /// Scaling of float features and regression targets (default: standard).
    pub normalize: Option<Normalize>,
    /// Training samples to use (default all; the synthetic set makes this many, 10,000).
    pub train_size: Option<usize>,
    /// Test samples to use (default all; the synthetic set makes this many, 2,000).
    pub test_size: Option<usize>,
    /// Fraction of the training data held out, seeded, to validate on (default: 0.1 for files
    /// or arrays without a test set, else 0; for a resumed model the fraction it records).
    pub validation: Option<f64>,
}

/// How float features (and regression targets) are scaled before training; byte features are
/// always divided by 255.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Normalize {
    /// Standardized by the training set's mean and standard deviation, per feature.
    #[default]
    Standard,
    /// Used as they are.
    None,
}

/// How the learning rate changes from epoch to epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ScheduleName {
    /// The same rate every epoch.
    #[default]
    Constant,
    /// Multiplied by `lr_gamma` every `lr_step` epochs.
    Step,
    /// Half a cosine from the rate down to 0 over the run.
    Cosine,
}

/// Where a run trains: on an adapter, on the fast CPU trainer, or on the CPU reference.
#[derive(Clone, Debug, PartialEq)]
pub enum Device {
    /// A GPU adapter, as [`AdapterChoice`] picks it.
    Gpu(AdapterChoice),
    /// The fast CPU trainer ([`crate::fast`]): no adapter needed.
    Cpu,
    /// The CPU reference (`ndarray`), the executable spec: slower, the same rounding on every
    /// machine.
    CpuReference,
}

impl Default for Device {
    /// The best adapter ([`AdapterChoice::Auto`]).
    fn default() -> Self {
        Device::Gpu(AdapterChoice::Auto)
    }
}

impl FromStr for Device {
    type Err = Error;

    /// `cpu` (the fast CPU trainer), `cpu-reference` (the CPU reference), or what
    /// [`AdapterChoice`] parses: `auto`, `software`, a
    /// backend (`vulkan`, `metal`, `dx12`, `gl`), `NAME@BACKEND` or part of an adapter's name.
    fn from_str(text: &str) -> Result<Device> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("cpu") {
            return Ok(Device::Cpu);
        }
        if text.eq_ignore_ascii_case("cpu-reference") {
            return Ok(Device::CpuReference);
        }
        text.parse().map(Device::Gpu)
    }
}

/// A model to continue training (a warm start).
#[derive(Clone, Debug)]
pub enum Resume {
    /// A model file (as `--save` writes it), with its optimizer state beside it if saved.
    File(PathBuf),
    /// A model in memory and what its file would record; the optimizer's state if kept.
    Model {
        /// The model.
        mlp: Mlp,
        /// Its epochs and recorded settings.
        info: CheckpointInfo,
        /// The optimizer state to continue with (`None`: the optimizer starts afresh).
        optimizer: Option<OptimizerState>,
    },
}

/// Everything a training run takes. `TrainSpec::default()` trains the default network on the
/// synthetic set; each field left `None` gets the task default, or for a resumed model the value
/// its file records. Errors name settings as the CLI's options do (`--lr`, `--layers`).
#[derive(Clone, Debug, Default)]
pub struct TrainSpec {
    /// The samples.
    pub data: Data,
    /// How the samples are read and prepared.
    pub data_options: DataOptions,

    /// Layer sizes, inputs first; they must match the data's widths.
    pub layers: Option<Vec<usize>>,
    /// Hidden layer sizes, around the data's widths (default `[128]`).
    pub hidden_sizes: Option<Vec<usize>>,
    /// Activation of the hidden layers (default ReLU; sigmoid with `tutorial`).
    pub hidden: Option<Activation>,
    /// Leaky ReLU's negative slope, in `[0, 1)` (default [`crate::model::DEFAULT_LEAKY_SLOPE`]).
    pub leaky_slope: Option<f32>,
    /// Activation of the output layer (default: identity for values, the loss's for classes).
    pub output: Option<Activation>,
    /// The loss (default cross-entropy for classes, mean squared error for values).
    pub loss: Option<Loss>,
    /// Weight initialisation of a new model (default auto: He for ReLU, Xavier otherwise).
    pub init: Option<Init>,
    /// The tutorial's network as the defaults (sigmoid, MSE, SGD at 0.5, 5 epochs).
    pub tutorial: bool,

    /// The update rule (default Adam).
    pub optimizer: Option<Optimizer>,
    /// The learning rate (default 1e-3).
    pub lr: Option<f32>,
    /// Weight decay: L2 in the gradient, decoupled with AdamW (default 0, AdamW 0.01).
    pub weight_decay: Option<f32>,
    /// Label smoothing ε of the cross-entropy (default 0).
    pub label_smoothing: Option<f32>,
    /// Clip the global gradient norm to this (default: no clipping).
    pub clip_norm: Option<f32>,
    /// Dropout after each hidden layer: one probability for all, or one per hidden layer.
    pub dropout: Option<Vec<f32>>,
    /// Dropout on the input features.
    pub input_dropout: Option<f32>,
    /// Deformations of the training images.
    pub augment: Option<Augmentation>,
    /// The height and width of images given as flat features.
    pub image_shape: Option<(usize, usize)>,

    /// Samples per step (default 64; capped at the training set's size).
    pub batch: Option<usize>,
    /// Epochs to train, on top of a resumed model's (default 10, or more to make 5,000 steps,
    /// at most 200).
    pub epochs: Option<usize>,
    /// The learning rate's schedule over the whole run (default constant).
    pub lr_schedule: Option<ScheduleName>,
    /// With [`ScheduleName::Step`]: epochs between drops (default 10).
    pub lr_step: Option<usize>,
    /// With [`ScheduleName::Step`]: the factor of each drop (default 0.1).
    pub lr_gamma: Option<f32>,
    /// Epochs of linear warm-up to the learning rate (default 0).
    pub warmup: Option<usize>,
    /// Stop once the validation loss has not improved by more than `tol` for this many epochs.
    pub early_stopping: Option<usize>,
    /// The improvement of the validation loss that counts (default 0, as Keras's `min_delta`).
    pub tol: Option<f32>,
    /// Seed of the weights, the shuffles, the validation split and the synthetic set (default 42).
    pub seed: Option<u64>,
    /// Visit the training samples in a new seeded order each epoch (default true); `false`
    /// visits them in their order, as scikit-learn's `shuffle=False`.
    pub shuffle: Option<bool>,

    /// The adapter, or the CPU reference.
    pub device: Device,
    /// Where the GPU trainer keeps the training set (default: resident if it fits).
    pub placement: DataPlacement,
    /// Time the first this many steps kernel by kernel (GPU only).
    pub profile: Option<usize>,
    /// Continue training a saved model, with the settings it records.
    pub resume: Option<Resume>,
}
