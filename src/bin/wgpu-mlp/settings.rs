//! What a `train` run trains with: the options for a new model, or for `--resume` everything the
//! saved files record (architecture, loss, optimizer and its hyper-parameters, data set, seed),
//! with an explicit option that contradicts them refused, or, where changing it is meaningful (the
//! learning rate, the weight decay, the batch, the seed), taken and said.

use std::path::Path;

use anyhow::{Result, bail};

use wgpu_mlp::checkpoint;
use wgpu_mlp::data::DatasetKind;
use wgpu_mlp::optim::{Optimizer, OptimizerConfig};
use wgpu_mlp::{Activation, Init, Loss, Mlp};

use crate::common::{DEFAULT_SEED, Recorded, output_activation, stated_architecture};
use crate::train::TrainArgs;

/// The defaults of a new model's options.
const DEFAULT_LAYERS: [usize; 3] = [784, 128, 10];
const DEFAULT_LEARNING_RATE: f32 = 0.5;
const DEFAULT_BATCH: usize = 64;

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
    /// The data set.
    pub dataset: DatasetKind,
}

impl Settings {
    /// The settings the options give, reading the `--resume`d model if there is one.
    pub fn from_args(args: &TrainArgs) -> Result<Settings> {
        match &args.resume {
            Some(path) => resumed(args, path),
            None => new_model(args),
        }
    }
}

fn new_model(args: &TrainArgs) -> Result<Settings> {
    let seed = args.seed.unwrap_or(DEFAULT_SEED);
    let layers = args
        .layers
        .as_ref()
        .map_or(&DEFAULT_LAYERS[..], |l| &l.0[..]);
    let hidden = args.hidden.unwrap_or(Activation::Sigmoid);
    let loss = args.loss.unwrap_or(Loss::Mse);
    let init = args.init.unwrap_or(Init::Auto);
    let mlp = Mlp::with_init(
        layers,
        hidden,
        output_activation(args.output, args.loss),
        loss,
        init,
        seed,
    )?;
    Ok(Settings {
        mlp,
        epochs_before: 0,
        seed,
        optimizer: OptimizerConfig {
            optimizer: args.optimizer.unwrap_or(Optimizer::Sgd),
            learning_rate: args.lr.unwrap_or(DEFAULT_LEARNING_RATE),
            weight_decay: args.weight_decay.unwrap_or(0.0),
        },
        batch: args.batch.unwrap_or(DEFAULT_BATCH),
        dataset: args.data.dataset.unwrap_or(DatasetKind::Synthetic),
    })
}

fn resumed(args: &TrainArgs, path: &Path) -> Result<Settings> {
    let (mlp, info) = checkpoint::load_with(
        path,
        stated_architecture(args.hidden, args.output, args.loss).as_ref(),
    )?;
    let file = path.display();
    check_architecture(args, &mlp, path)?;
    if args.init.is_some() {
        bail!("--init applies to a new model; {file} already has its weights (leave --init out)");
    }
    let saved = Recorded::of(&info, path);
    let optimizer = match (args.optimizer, saved.optimizer()?) {
        (Some(asked), Some(recorded)) if asked != recorded => bail!(
            "--optimizer {} contradicts {file}, which was trained with {} (its state is saved beside \
             it); leave --optimizer out to continue with {}",
            asked.name(),
            recorded.name(),
            recorded.name()
        ),
        (asked, recorded) => asked.or(recorded).unwrap_or(Optimizer::Sgd),
    };
    let dataset = match (args.data.dataset, saved.dataset()?) {
        (Some(asked), Some(recorded)) if asked != recorded => bail!(
            "--dataset {} contradicts {file}, which was trained on {}; leave --dataset out to \
             continue on {}",
            asked.name(),
            recorded.name(),
            recorded.name()
        ),
        (asked, recorded) => asked.or(recorded).unwrap_or(DatasetKind::Synthetic),
    };
    let learning_rate = setting(
        &saved,
        "lr",
        "learning rate",
        args.lr,
        DEFAULT_LEARNING_RATE,
    )?;
    let weight_decay = setting(
        &saved,
        "weight_decay",
        "weight decay",
        args.weight_decay,
        0.0,
    )?;
    let batch = setting(&saved, "batch", "batch", args.batch, DEFAULT_BATCH)?;
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
        dataset,
    })
}

/// Refuses `--layers`, `--hidden`, `--output` or `--loss` that describe another model than the
/// one being resumed.
fn check_architecture(args: &TrainArgs, mlp: &Mlp, path: &Path) -> Result<()> {
    let file = path.display();
    let join = |sizes: &[usize]| {
        sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
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

/// The run settings a save records beside the architecture, for a later `--resume`.
pub fn recorded(settings: &Settings) -> [(&'static str, String); 6] {
    let optimizer = &settings.optimizer;
    [
        ("optimizer", optimizer.optimizer.name().to_string()),
        ("lr", optimizer.learning_rate.to_string()),
        ("weight_decay", optimizer.weight_decay.to_string()),
        ("batch", settings.batch.to_string()),
        ("dataset", settings.dataset.name().to_string()),
        ("seed", settings.seed.to_string()),
    ]
}
