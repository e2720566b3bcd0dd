//! What a `train` run trains with: the options for a new model, or for `--resume` everything the
//! saved files record (architecture, loss, optimizer and its hyper-parameters, data set, seed),
//! with an explicit option that contradicts them refused, or, where changing it is meaningful (the
//! learning rate, the weight decay, the batch, the seed), taken and said.

use std::path::Path;

use anyhow::{Context, Result, bail};

use wgpu_mlp::checkpoint::CheckpointInfo;
use wgpu_mlp::data::files::Task;
use wgpu_mlp::dropout::{Dropout, parse_rates};
use wgpu_mlp::optim::OptimizerConfig;
use wgpu_mlp::train::{DEFAULT_HIDDEN_SIZES, Defaults, LrSchedule, Regularization, ScheduleKind};
use wgpu_mlp::{Activation, Loss, Mlp};

use crate::common::{DEFAULT_SEED, Recorded};
use crate::train::{ScheduleName, TrainArgs};

/// What the data says a model must take and give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataShape {
    /// Features per sample.
    pub inputs: usize,
    /// Classes, or regression targets per sample.
    pub outputs: usize,
    /// Classification or regression.
    pub task: Task,
    /// Training samples.
    pub samples: usize,
}

/// Everything a run trains with.
pub struct Settings {
    /// The model to train.
    pub mlp: Mlp,
    /// Epochs it was trained before this run.
    pub epochs_before: usize,
    /// Seeds the shuffles (and a new model's weights and the synthetic set).
    pub seed: u64,
    /// The update rule and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Samples per step (before capping at the training set's size).
    pub batch: usize,
    /// Epochs to train in this run.
    pub epochs: usize,
    /// The learning rate of each epoch.
    pub schedule: LrSchedule,
    /// Label smoothing, gradient clipping and dropout.
    pub regularization: Regularization,
}

/// A model given to `--resume`: its file, weights and metadata.
pub struct Resumed<'a> {
    pub path: &'a Path,
    pub mlp: Mlp,
    pub info: CheckpointInfo,
}

impl Settings {
    /// The settings the options give for data of `shape`, from the `--resume`d model if there is
    /// one.
    pub fn from_args(
        args: &TrainArgs,
        resumed: Option<Resumed>,
        shape: DataShape,
    ) -> Result<Settings> {
        let mut settings = match resumed {
            Some(resumed) => resumed_settings(args, resumed, shape)?,
            None => new_model(args, shape)?,
        };
        settings.schedule = schedule(args, &settings)?;
        settings.regularization.check_ranges()?;
        if settings.regularization.label_smoothing > 0.0 && settings.mlp.loss != Loss::CrossEntropy
        {
            bail!(
                "--label-smoothing applies to --loss cross-entropy, but this model is trained with {}",
                settings.mlp.loss.name()
            );
        }
        Ok(settings)
    }
}

/// The defaults the options choose for `task`: the tutorial's network with `--tutorial`, else
/// the task's.
pub fn defaults(args: &TrainArgs, task: Task) -> Defaults {
    if args.tutorial {
        Defaults::tutorial(task)
    } else {
        Defaults::for_task(task)
    }
}

/// The layer sizes for data of `shape`: `--layers` (which must agree with the data), else the
/// data's widths around `--hidden-sizes` (default 128).
fn layer_sizes(args: &TrainArgs, shape: DataShape) -> Result<Vec<usize>> {
    if let Some(layers) = &args.layers {
        let (first, last) = (layers.0[0], layers.0[layers.0.len() - 1]);
        if first != shape.inputs || last != shape.outputs {
            let outputs = match (shape.task, shape.outputs) {
                (Task::Classification, _) => "classes",
                (Task::Regression, 1) => "target",
                (Task::Regression, _) => "targets",
            };
            bail!(
                "--layers {} does not fit the data: it has {} features and {} {outputs} per sample, so \
                 the layers must start with {} and end with {} (or give only the hidden layers with \
                 --hidden-sizes)",
                join(&layers.0),
                shape.inputs,
                shape.outputs,
                shape.inputs,
                shape.outputs
            );
        }
        return Ok(layers.0.clone());
    }
    let hidden = args
        .hidden_sizes
        .as_ref()
        .map_or(&DEFAULT_HIDDEN_SIZES[..], |h| &h.0[..]);
    let mut sizes = vec![shape.inputs];
    sizes.extend_from_slice(hidden);
    sizes.push(shape.outputs);
    Ok(sizes)
}

fn join(sizes: &[usize]) -> String {
    sizes
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn new_model(args: &TrainArgs, shape: DataShape) -> Result<Settings> {
    let seed = args.seed.unwrap_or(DEFAULT_SEED);
    let layers = layer_sizes(args, shape)?;
    let defaults = defaults(args, shape.task);
    let loss = defaults.loss_for(args.output, args.loss);
    let model = Defaults {
        hidden: args.hidden.unwrap_or(defaults.hidden),
        output: defaults.output_for(args.output, loss),
        loss,
        init: args.init.unwrap_or(defaults.init),
        leaky_slope: args.leaky_slope.unwrap_or(defaults.leaky_slope),
        ..defaults
    };
    if args.leaky_slope.is_some() && model.hidden != Activation::LeakyRelu {
        bail!(
            "--leaky-slope is the slope of --hidden leaky-relu, but the hidden layers are {}",
            model.hidden.name()
        );
    }
    let optimizer = args.optimizer.unwrap_or(defaults.optimizer.optimizer);
    let batch = args.batch.unwrap_or(defaults.batch_size);
    let hidden_layers = layers.len() - 2;
    let dropout = Dropout {
        input: args.input_dropout.unwrap_or(0.0),
        hidden: match &args.dropout {
            Some(rates) => Dropout::hidden_rates(&rates.0, hidden_layers)?,
            None => Vec::new(),
        },
    };
    Ok(Settings {
        mlp: model.mlp(&layers, seed)?,
        epochs_before: 0,
        seed,
        optimizer: OptimizerConfig {
            optimizer,
            learning_rate: args.lr.unwrap_or(defaults.optimizer.learning_rate),
            weight_decay: args
                .weight_decay
                .unwrap_or(optimizer.default_weight_decay(defaults.optimizer.weight_decay)),
        },
        batch,
        epochs: args
            .epochs
            .unwrap_or_else(|| defaults.epochs_for(shape.samples, batch)),
        schedule: LrSchedule::constant(defaults.optimizer.learning_rate),
        regularization: Regularization {
            label_smoothing: args.label_smoothing.unwrap_or(0.0),
            clip_norm: args.clip_norm,
            dropout,
        },
    })
}

/// The schedule the options ask for, from the settings' learning rate, over the epochs of the
/// whole run (those before a resume included).
fn schedule(args: &TrainArgs, settings: &Settings) -> Result<LrSchedule> {
    let kind = match args.lr_schedule.unwrap_or(ScheduleName::Constant) {
        ScheduleName::Constant => ScheduleKind::Constant,
        ScheduleName::Step => ScheduleKind::Step {
            every: args.lr_step.unwrap_or(10),
            gamma: args.lr_gamma.unwrap_or(0.1),
        },
        ScheduleName::Cosine => ScheduleKind::Cosine,
    };
    if !matches!(kind, ScheduleKind::Step { .. })
        && (args.lr_step.is_some() || args.lr_gamma.is_some())
    {
        bail!("--lr-step and --lr-gamma shape the step schedule: add --lr-schedule step");
    }
    let schedule = LrSchedule {
        base: settings.optimizer.learning_rate,
        kind,
        warmup: args.warmup.unwrap_or(0),
        epochs: settings.epochs_before + settings.epochs,
    };
    schedule.validate()?;
    Ok(schedule)
}

fn resumed_settings(args: &TrainArgs, resumed: Resumed, shape: DataShape) -> Result<Settings> {
    let Resumed { path, mlp, info } = resumed;
    let file = path.display();
    check_architecture(args, &mlp, path)?;
    if mlp.inputs() != shape.inputs || mlp.outputs() != shape.outputs {
        bail!(
            "{file} takes {} inputs and gives {} outputs, but the data has {} features and {} \
             outputs per sample",
            mlp.inputs(),
            mlp.outputs(),
            shape.inputs,
            shape.outputs
        );
    }
    if args.init.is_some() {
        bail!("--init applies to a new model; {file} already has its weights (leave --init out)");
    }
    let saved = Recorded::of(&info, path);
    // A file that does not record a setting predates the task defaults: it was trained with the
    // tutorial's.
    let unrecorded = Defaults::UNRECORDED.optimizer;
    let optimizer = match (args.optimizer, saved.optimizer()?) {
        (Some(asked), Some(recorded)) if asked != recorded => bail!(
            "--optimizer {} contradicts {file}, which was trained with {} (its state is saved beside \
             it); leave --optimizer out to continue with {}",
            asked.name(),
            recorded.name(),
            recorded.name()
        ),
        (asked, recorded) => asked.or(recorded).unwrap_or(unrecorded.optimizer),
    };
    let learning_rate = setting(
        &saved,
        "lr",
        "learning rate",
        args.lr,
        unrecorded.learning_rate,
    )?;
    let weight_decay = setting(
        &saved,
        "weight_decay",
        "weight decay",
        args.weight_decay,
        optimizer.default_weight_decay(unrecorded.weight_decay),
    )?;
    // Files from before these settings existed trained without them.
    let regularization = Regularization {
        label_smoothing: later_setting(
            &saved,
            "label_smoothing",
            "label smoothing",
            args.label_smoothing,
        )?
        .unwrap_or(0.0),
        clip_norm: later_setting(&saved, "clip_norm", "clip norm", args.clip_norm)?,
        dropout: resumed_dropout(args, &saved, &mlp, path)?,
    };
    let batch = setting(
        &saved,
        "batch",
        "batch",
        args.batch,
        Defaults::UNRECORDED.batch_size,
    )?;
    let seed = setting(&saved, "seed", "seed", args.seed, DEFAULT_SEED)?;
    eprintln!(
        "resuming {file} ({:?}, {} epochs done, seed {seed})",
        mlp.sizes(),
        info.epochs
    );
    Ok(Settings {
        mlp,
        epochs_before: info.epochs,
        seed,
        optimizer: OptimizerConfig {
            optimizer,
            learning_rate,
            weight_decay,
        },
        batch,
        epochs: args
            .epochs
            .unwrap_or_else(|| defaults(args, shape.task).epochs_for(shape.samples, batch)),
        schedule: LrSchedule::constant(learning_rate),
        regularization,
    })
}

/// The dropout a resumed run trains with: the model file's, each of `--dropout` and
/// `--input-dropout` given replacing its recorded value (and said, since it changes the run).
fn resumed_dropout(args: &TrainArgs, saved: &Recorded, mlp: &Mlp, path: &Path) -> Result<Dropout> {
    let hidden_layers = mlp.layers.len() - 1;
    let recorded_hidden = match saved.value::<String>("dropout")? {
        Some(text) => Dropout::hidden_rates(&parse_rates(&text)?, hidden_layers)
            .with_context(|| format!("{}: its \"dropout\" {text:?}", path.display()))?,
        None => Vec::new(),
    };
    let recorded = Dropout {
        input: saved.value("input_dropout")?.unwrap_or(0.0),
        hidden: recorded_hidden,
    };
    let dropout = Dropout {
        input: args.input_dropout.unwrap_or(recorded.input),
        hidden: match &args.dropout {
            Some(rates) => Dropout::hidden_rates(&rates.0, hidden_layers)?,
            None => recorded.hidden.clone(),
        },
    };
    if dropout.hidden != recorded.hidden {
        eprintln!(
            "--dropout {} replaces the {} {} was trained with",
            dropout.hidden_text(),
            recorded.hidden_text(),
            path.display()
        );
    }
    if dropout.input != recorded.input {
        eprintln!(
            "--input-dropout {} replaces the {} {} was trained with",
            dropout.input,
            recorded.input,
            path.display()
        );
    }
    Ok(dropout)
}

/// Refuses `--layers`, `--hidden`, `--output`, `--loss` or `--leaky-slope` that describe another
/// model than the one being resumed.
fn check_architecture(args: &TrainArgs, mlp: &Mlp, path: &Path) -> Result<()> {
    let file = path.display();
    if args.hidden_sizes.is_some() {
        bail!("--hidden-sizes applies to a new model; {file} already has its layers");
    }
    if let Some(layers) = &args.layers
        && layers.0 != mlp.sizes()
    {
        bail!(
            "--layers {} contradicts {file}, whose layers are {}",
            join(&layers.0),
            join(&mlp.sizes())
        );
    }
    let last = mlp.layers.len() - 1;
    let hidden = mlp.layers[..last].first().map(|l| l.activation);
    if let (Some(asked), Some(recorded)) = (args.hidden, hidden)
        && asked != recorded
    {
        bail!(
            "--hidden {} contradicts {file}, whose hidden layers are {}",
            asked.name(),
            recorded.name()
        );
    }
    let output = mlp.layers[last].activation;
    if let Some(asked) = args.output
        && asked != output
    {
        bail!(
            "--output {} contradicts {file}, whose output layer is {}",
            asked.name(),
            output.name()
        );
    }
    if let Some(asked) = args.loss
        && asked != mlp.loss
    {
        bail!(
            "--loss {} contradicts {file}, which was trained with {}",
            asked.name(),
            mlp.loss.name()
        );
    }
    if let Some(asked) = args.leaky_slope {
        if hidden != Some(Activation::LeakyRelu) {
            bail!("--leaky-slope is the slope of leaky-relu hidden layers, which {file} has not");
        }
        if asked != mlp.leaky_slope {
            bail!(
                "--leaky-slope {asked} contradicts {file}, whose leaky ReLU slope is {}",
                mlp.leaky_slope
            );
        }
    }
    Ok(())
}

/// A setting a new value may replace: the option if given (said when it changes what the file
/// records), else the recorded value, else `default` (said, for older files).
fn setting<T>(recorded: &Recorded, key: &str, what: &str, asked: Option<T>, default: T) -> Result<T>
where
    T: std::str::FromStr + PartialEq + std::fmt::Display + Copy,
{
    let file = recorded.path().display();
    Ok(match (asked, recorded.value::<T>(key)?) {
        (Some(asked), Some(saved)) if asked != saved => {
            eprintln!("{what} {asked} (instead of the {saved} {file} was trained with)");
            asked
        }
        (Some(asked), _) => asked,
        (None, Some(saved)) => saved,
        (None, None) => {
            eprintln!("{file} does not record its {what}: using {default}");
            default
        }
    })
}

/// A setting that files from before it existed do not record (they trained without it): the
/// asked value, said when it replaces the recorded one, else the recorded one, else none.
fn later_setting(
    recorded: &Recorded,
    key: &str,
    what: &str,
    asked: Option<f32>,
) -> Result<Option<f32>> {
    let saved = recorded.value::<f32>(key)?;
    if let (Some(asked), Some(saved)) = (asked, saved)
        && asked != saved
    {
        let file = recorded.path().display();
        eprintln!("{what} {asked} (instead of the {saved} {file} was trained with)");
    }
    Ok(asked.or(saved))
}

/// The run settings a save records beside the architecture, for a later `--resume`.
pub fn recorded(settings: &Settings) -> Vec<(&'static str, String)> {
    let optimizer = &settings.optimizer;
    let regularization = &settings.regularization;
    let mut recorded = vec![
        ("optimizer", optimizer.optimizer.name().to_string()),
        ("lr", optimizer.learning_rate.to_string()),
        ("weight_decay", optimizer.weight_decay.to_string()),
        ("batch", settings.batch.to_string()),
        ("seed", settings.seed.to_string()),
        (
            "label_smoothing",
            regularization.label_smoothing.to_string(),
        ),
    ];
    recorded.extend(
        regularization
            .clip_norm
            .map(|max_norm| ("clip_norm", max_norm.to_string())),
    );
    recorded.push(("dropout", regularization.dropout.hidden_text()));
    recorded.push(("input_dropout", regularization.dropout.input.to_string()));
    recorded
}
