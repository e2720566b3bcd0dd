//! What a run trains with ([`Settings`]): the spec's values for a new model, or for a resumed
//! one everything its file records (architecture, loss, optimizer and its hyper-parameters,
//! batch, seed, regularization, deformations), with a setting that contradicts them refused,
//! or, where changing it is meaningful (the learning rate, the weight decay, the batch, the
//! seed, the regularization), taken and said in the run's notes.

use std::path::Path;
use std::sync::Arc;

use crate::augment::Augmentation;
use crate::checkpoint::CheckpointInfo;
use crate::data::files::Task;
use crate::dropout::{Dropout, parse_rates};
use crate::error::{Error, Result};
use crate::model::{Activation, Loss, Mlp};
use crate::optim::OptimizerConfig;
use crate::train::{
    DEFAULT_HIDDEN_SIZES, DEFAULT_SEED, Defaults, LrSchedule, Regularization, ScheduleKind,
    TrainConfig,
};

use super::data::RunData;
use super::recorded::Recorded;
use super::spec::{ScheduleName, TrainSpec};

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

impl DataShape {
    /// The shape of `data`'s training set.
    pub fn of(data: &RunData) -> DataShape {
        DataShape {
            inputs: data.train.inputs(),
            outputs: data.train.outputs(),
            task: data.preparation.task,
            samples: data.train.len(),
        }
    }
}

/// Everything a run trains with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The model to train (a new one's initial weights, or the resumed one).
    pub mlp: Mlp,
    /// Epochs it was trained before this run.
    pub epochs_before: usize,
    /// Seeds the shuffles (and a new model's weights and the synthetic set).
    pub seed: u64,
    /// The update rule and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Samples per step, capped at the training set's size.
    pub batch: usize,
    /// Epochs to train in this run.
    pub epochs: usize,
    /// The learning rate of each epoch, over the whole run (those before a resume included).
    pub schedule: LrSchedule,
    /// Label smoothing, gradient clipping and dropout.
    pub regularization: Regularization,
    /// The deformations trained with, and the image shape they assume.
    pub augmentation: Option<(Augmentation, (usize, usize))>,
}

/// A model to continue: its weights, its file's records and how the file is named.
pub struct Resumed<'a> {
    /// The file (or the name of the bytes) it came from.
    pub path: &'a Path,
    /// The model.
    pub mlp: Mlp,
    /// What its file records.
    pub info: &'a CheckpointInfo,
}

impl Settings {
    /// The settings `spec` gives for data of `shape`, from the `resumed` model if there is one;
    /// `notes` gets each recorded value a setting replaces and each default an older file
    /// needed.
    pub fn resolve(
        spec: &TrainSpec,
        resumed: Option<Resumed>,
        shape: DataShape,
        notes: &mut Vec<String>,
    ) -> Result<Settings> {
        if spec.epochs == Some(0) {
            return Err(Error::Settings(
                "--epochs 0: nothing to train (give at least 1)".into(),
            ));
        }
        let mut settings = match resumed {
            Some(resumed) => resumed_settings(spec, resumed, shape, notes)?,
            None => new_model(spec, shape)?,
        };
        settings.schedule = schedule(spec, &settings)?;
        settings.regularization.check_ranges()?;
        if settings.regularization.label_smoothing > 0.0 && settings.mlp.loss != Loss::CrossEntropy
        {
            return Err(Error::Settings(format!(
                "--label-smoothing applies to --loss cross-entropy, but this model is trained with {}",
                settings.mlp.loss.name()
            )));
        }
        settings.mlp.validate().map_err(|e| {
            Error::Settings(format!(
                "the network options do not describe a model that can be trained: {e}"
            ))
        })?;
        // A batch larger than the training set is the whole set, and said.
        if settings.batch > shape.samples && shape.samples > 0 {
            notes.push(format!(
                "note: a batch of {} is more than the {} training samples; using batches of {}",
                settings.batch, shape.samples, shape.samples
            ));
            settings.batch = shape.samples;
        }
        Ok(settings)
    }

    /// The trainer's configuration.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            optimizer: self.optimizer,
            batch_size: self.batch,
            seed: self.seed,
            regularization: self.regularization.clone(),
        }
    }

    /// The settings a model file records beside the architecture, for a later resume.
    pub fn recorded(&self) -> Vec<(&'static str, String)> {
        let optimizer = &self.optimizer;
        let regularization = &self.regularization;
        let mut recorded = vec![
            ("optimizer", optimizer.optimizer.name().to_string()),
            ("lr", optimizer.learning_rate.to_string()),
            ("weight_decay", optimizer.weight_decay.to_string()),
            ("batch", self.batch.to_string()),
            ("seed", self.seed.to_string()),
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
        if let Some((augmentation, shape)) = &self.augmentation {
            recorded.extend(augmentation.metadata(*shape));
        }
        recorded
    }
}

/// The defaults `spec` chooses for `task`: the tutorial's network with `tutorial`, else the
/// task's.
pub fn defaults(spec: &TrainSpec, task: Task) -> Defaults {
    if spec.tutorial {
        Defaults::tutorial(task)
    } else {
        Defaults::for_task(task)
    }
}

/// The layer sizes for data of `shape`: `layers` (which must agree with the data), else the
/// data's widths around `hidden_sizes` (default 128).
fn layer_sizes(spec: &TrainSpec, shape: DataShape) -> Result<Vec<usize>> {
    if let Some(layers) = &spec.layers {
        let (first, last) = (layers.first(), layers.last());
        if first != Some(&shape.inputs) || last != Some(&shape.outputs) {
            let outputs = match (shape.task, shape.outputs) {
                (Task::Classification, _) => "classes",
                (Task::Regression, 1) => "target",
                (Task::Regression, _) => "targets",
            };
            return Err(Error::Settings(format!(
                "--layers {} does not fit the data: it has {} features and {} {outputs} per sample, so \
                 the layers must start with {} and end with {} (or give only the hidden layers with \
                 --hidden-sizes)",
                join(layers),
                shape.inputs,
                shape.outputs,
                shape.inputs,
                shape.outputs
            )));
        }
        return Ok(layers.clone());
    }
    let hidden = spec
        .hidden_sizes
        .as_deref()
        .unwrap_or(&DEFAULT_HIDDEN_SIZES[..]);
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

fn new_model(spec: &TrainSpec, shape: DataShape) -> Result<Settings> {
    let seed = spec.seed.unwrap_or(DEFAULT_SEED);
    let layers = layer_sizes(spec, shape)?;
    let defaults = defaults(spec, shape.task);
    let loss = defaults.loss_for(spec.output, spec.loss);
    let model = Defaults {
        hidden: spec.hidden.unwrap_or(defaults.hidden),
        output: defaults.output_for(spec.output, loss),
        loss,
        init: spec.init.unwrap_or(defaults.init),
        leaky_slope: spec.leaky_slope.unwrap_or(defaults.leaky_slope),
        ..defaults
    };
    if spec.leaky_slope.is_some() && model.hidden != Activation::LeakyRelu {
        return Err(Error::Settings(format!(
            "--leaky-slope is the slope of --hidden leaky-relu, but the hidden layers are {}",
            model.hidden.name()
        )));
    }
    let optimizer = spec.optimizer.unwrap_or(defaults.optimizer.optimizer);
    let batch = spec.batch.unwrap_or(defaults.batch_size);
    let hidden_layers = layers.len().saturating_sub(2);
    let dropout = Dropout {
        input: spec.input_dropout.unwrap_or(0.0),
        hidden: match &spec.dropout {
            Some(rates) => Dropout::hidden_rates(rates, hidden_layers)?,
            None => Vec::new(),
        },
    };
    Ok(Settings {
        mlp: model.mlp(&layers, seed)?,
        epochs_before: 0,
        seed,
        optimizer: OptimizerConfig {
            optimizer,
            learning_rate: spec.lr.unwrap_or(defaults.optimizer.learning_rate),
            weight_decay: spec
                .weight_decay
                .unwrap_or(optimizer.default_weight_decay(defaults.optimizer.weight_decay)),
        },
        batch,
        epochs: spec
            .epochs
            .unwrap_or_else(|| defaults.epochs_for(shape.samples, batch)),
        schedule: LrSchedule::constant(defaults.optimizer.learning_rate),
        regularization: Regularization {
            label_smoothing: spec.label_smoothing.unwrap_or(0.0),
            clip_norm: spec.clip_norm,
            dropout,
        },
        augmentation: None,
    })
}

/// The schedule `spec` asks for, from the settings' learning rate, over the epochs of the
/// whole run (those before a resume included), so that a resumed run continues it.
fn schedule(spec: &TrainSpec, settings: &Settings) -> Result<LrSchedule> {
    let kind = match spec.lr_schedule.unwrap_or_default() {
        ScheduleName::Constant => ScheduleKind::Constant,
        ScheduleName::Step => ScheduleKind::Step {
            every: spec.lr_step.unwrap_or(10),
            gamma: spec.lr_gamma.unwrap_or(0.1),
        },
        ScheduleName::Cosine => ScheduleKind::Cosine,
    };
    if !matches!(kind, ScheduleKind::Step { .. })
        && (spec.lr_step.is_some() || spec.lr_gamma.is_some())
    {
        return Err(Error::Settings(
            "--lr-step and --lr-gamma shape the step schedule: add --lr-schedule step".into(),
        ));
    }
    let schedule = LrSchedule {
        base: settings.optimizer.learning_rate,
        kind,
        warmup: spec.warmup.unwrap_or(0),
        epochs: settings.epochs_before + settings.epochs,
    };
    schedule.validate()?;
    Ok(schedule)
}

fn resumed_settings(
    spec: &TrainSpec,
    resumed: Resumed,
    shape: DataShape,
    notes: &mut Vec<String>,
) -> Result<Settings> {
    let Resumed { path, mlp, info } = resumed;
    let file = path.display();
    check_architecture(spec, &mlp, path)?;
    if mlp.inputs() != shape.inputs || mlp.outputs() != shape.outputs {
        return Err(Error::Settings(format!(
            "{file} takes {} inputs and gives {} outputs, but the data has {} features and {} \
             outputs per sample",
            mlp.inputs(),
            mlp.outputs(),
            shape.inputs,
            shape.outputs
        )));
    }
    if spec.init.is_some() {
        return Err(Error::Settings(format!(
            "--init applies to a new model; {file} already has its weights (leave --init out)"
        )));
    }
    let saved = Recorded::of(info, path);
    // A file that does not record a setting predates the task defaults: it was trained with the
    // tutorial's.
    let unrecorded = Defaults::UNRECORDED.optimizer;
    let optimizer = match (spec.optimizer, saved.optimizer()?) {
        (Some(asked), Some(recorded)) if asked != recorded => {
            return Err(Error::Settings(format!(
                "--optimizer {} contradicts {file}, which was trained with {} (its state is saved \
                 beside it); leave --optimizer out to continue with {}",
                asked.name(),
                recorded.name(),
                recorded.name()
            )));
        }
        (asked, recorded) => asked.or(recorded).unwrap_or(unrecorded.optimizer),
    };
    let mut said = Said { saved, notes };
    let learning_rate = said.setting("lr", "learning rate", spec.lr, unrecorded.learning_rate)?;
    let weight_decay = said.setting(
        "weight_decay",
        "weight decay",
        spec.weight_decay,
        optimizer.default_weight_decay(unrecorded.weight_decay),
    )?;
    // Files from before these settings existed trained without them.
    let regularization = Regularization {
        label_smoothing: said
            .later_setting("label_smoothing", "label smoothing", spec.label_smoothing)?
            .unwrap_or(0.0),
        clip_norm: said.later_setting("clip_norm", "clip norm", spec.clip_norm)?,
        dropout: said.dropout(spec, &mlp)?,
    };
    let batch = said.setting(
        "batch",
        "batch",
        spec.batch,
        Defaults::UNRECORDED.batch_size,
    )?;
    let seed = said.setting("seed", "seed", spec.seed, DEFAULT_SEED)?;
    notes.push(format!(
        "resuming {file} ({:?}, {} epochs done, seed {seed})",
        mlp.sizes(),
        info.epochs
    ));
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
        epochs: spec
            .epochs
            .unwrap_or_else(|| defaults(spec, shape.task).epochs_for(shape.samples, batch)),
        schedule: LrSchedule::constant(learning_rate),
        regularization,
        augmentation: None,
    })
}

/// Refuses `layers`, `hidden_sizes`, `hidden`, `leaky_slope`, `output` or `loss` that describe
/// another model than the one being resumed.
fn check_architecture(spec: &TrainSpec, mlp: &Mlp, path: &Path) -> Result<()> {
    let file = path.display();
    let refuse = |why: String| Err(Error::Settings(why));
    if spec.hidden_sizes.is_some() {
        return refuse(format!(
            "--hidden-sizes applies to a new model; {file} already has its layers"
        ));
    }
    if let Some(layers) = &spec.layers
        && *layers != mlp.sizes()
    {
        return refuse(format!(
            "--layers {} contradicts {file}, whose layers are {}",
            join(layers),
            join(&mlp.sizes())
        ));
    }
    let last = mlp.layers.len() - 1;
    let hidden = mlp.layers[..last].first().map(|l| l.activation);
    if let (Some(asked), Some(recorded)) = (spec.hidden, hidden)
        && asked != recorded
    {
        return refuse(format!(
            "--hidden {} contradicts {file}, whose hidden layers are {}",
            asked.name(),
            recorded.name()
        ));
    }
    if let Some(asked) = spec.leaky_slope {
        if hidden != Some(Activation::LeakyRelu) {
            return refuse(format!(
                "--leaky-slope is the slope of leaky-relu hidden layers, which {file} has not"
            ));
        }
        if asked != mlp.leaky_slope {
            return refuse(format!(
                "--leaky-slope {asked} contradicts {file}, whose leaky ReLU slope is {}",
                mlp.leaky_slope
            ));
        }
    }
    let output = mlp.layers[last].activation;
    if let Some(asked) = spec.output
        && asked != output
    {
        return refuse(format!(
            "--output {} contradicts {file}, whose output layer is {}",
            asked.name(),
            output.name()
        ));
    }
    if let Some(asked) = spec.loss
        && asked != mlp.loss
    {
        return refuse(format!(
            "--loss {} contradicts {file}, which was trained with {}",
            asked.name(),
            mlp.loss.name()
        ));
    }
    Ok(())
}

/// A resumed file's records, and the notes that say where a setting replaces one.
struct Said<'a, 'n> {
    saved: Recorded<'a>,
    notes: &'n mut Vec<String>,
}

impl Said<'_, '_> {
    /// A setting a new value may replace: the asked one if given (said when it changes what the
    /// file records), else the recorded value, else `default` (said, for older files).
    fn setting<T>(&mut self, key: &str, what: &str, asked: Option<T>, default: T) -> Result<T>
    where
        T: std::str::FromStr + PartialEq + std::fmt::Display + Copy,
    {
        let file = self.saved.path().display();
        Ok(match (asked, self.saved.value::<T>(key)?) {
            (Some(asked), Some(saved)) if asked != saved => {
                self.notes.push(format!(
                    "{what} {asked} (instead of the {saved} {file} was trained with)"
                ));
                asked
            }
            (Some(asked), _) => asked,
            (None, Some(saved)) => saved,
            (None, None) => {
                self.notes.push(format!(
                    "{file} does not record its {what}: using {default}"
                ));
                default
            }
        })
    }

    /// A setting that files from before it existed do not record (they trained without it):
    /// the asked value, said when it replaces the recorded one, else the recorded one, else none.
    fn later_setting(&mut self, key: &str, what: &str, asked: Option<f32>) -> Result<Option<f32>> {
        let saved = self.saved.value::<f32>(key)?;
        if let (Some(asked), Some(saved)) = (asked, saved)
            && asked != saved
        {
            let file = self.saved.path().display();
            self.notes.push(format!(
                "{what} {asked} (instead of the {saved} {file} was trained with)"
            ));
        }
        Ok(asked.or(saved))
    }

    /// The dropout a resumed run trains with: the file's, each of `dropout` and
    /// `input_dropout` given replacing its recorded value (and said, since it changes the run).
    fn dropout(&mut self, spec: &TrainSpec, mlp: &Mlp) -> Result<Dropout> {
        let file = self.saved.path().display();
        let hidden_layers = mlp.layers.len() - 1;
        let recorded_hidden = match self.saved.text("dropout") {
            Some(text) => parse_rates(text)
                .and_then(|rates| Dropout::hidden_rates(&rates, hidden_layers))
                .map_err(|e| Error::Model(format!("{file}: its \"dropout\" {text:?}: {e}")))?,
            None => Vec::new(),
        };
        let recorded = Dropout {
            input: self.saved.value("input_dropout")?.unwrap_or(0.0),
            hidden: recorded_hidden,
        };
        let dropout = Dropout {
            input: spec.input_dropout.unwrap_or(recorded.input),
            hidden: match &spec.dropout {
                Some(rates) => Dropout::hidden_rates(rates, hidden_layers)?,
                None => recorded.hidden.clone(),
            },
        };
        if dropout.hidden != recorded.hidden {
            self.notes.push(format!(
                "--dropout {} replaces the {} {file} was trained with",
                dropout.hidden_text(),
                recorded.hidden_text(),
            ));
        }
        if dropout.input != recorded.input {
            self.notes.push(format!(
                "--input-dropout {} replaces the {} {file} was trained with",
                dropout.input, recorded.input,
            ));
        }
        Ok(dropout)
    }
}

/// The deformations a run trains with and the image shape they assume: `spec`'s, or a resumed
/// model's (a deformation that contradicts it is refused, as other settings are). Gives every
/// set of `data` the spec's `image_shape`, else the recorded one.
pub fn deformations(
    spec: &TrainSpec,
    resumed: Option<(&CheckpointInfo, &Path)>,
    data: &mut RunData,
) -> Result<Option<(Augmentation, (usize, usize))>> {
    let asked = spec.augment;
    if let Some(asked) = &asked {
        asked.validate()?;
    }
    let recorded = match resumed {
        Some((info, path)) => {
            let get = |key: &str| info.extra.get(key).map(String::as_str);
            let file = path.display();
            let recorded = Augmentation::from_metadata(get)
                .map_err(|e| Error::Model(format!("{file}: its deformations: {e}")))?;
            match (&asked, &recorded) {
                (Some(asked), Some((saved, _))) if asked != saved => {
                    return Err(Error::Settings(format!(
                        "--augment {} with these ranges contradicts {file}, which was trained with \
                         {saved:?}; leave the deformation options out to continue with them",
                        asked.kinds()
                    )));
                }
                (Some(_), None) => {
                    return Err(Error::Settings(format!(
                        "--augment contradicts {file}, which was trained without deformations; \
                         leave it out to continue as it was trained"
                    )));
                }
                _ => {}
            }
            recorded
        }
        None => None,
    };
    apply_image_shape(spec.image_shape.or(recorded.map(|(_, shape)| shape)), data)?;
    let Some(augmentation) = asked.or(recorded.map(|(saved, _)| saved)) else {
        return Ok(None);
    };
    augmentation.check_image_shape(data.train.image_shape, "the training set")?;
    let shape = data.train.image_shape.unwrap_or_default();
    Ok(Some((augmentation, shape)))
}

/// Gives every set of `data` the image shape `shape` (checked against its features and any
/// shape its files carry).
pub fn apply_image_shape(shape: Option<(usize, usize)>, data: &mut RunData) -> Result<()> {
    let Some((height, width)) = shape else {
        return Ok(());
    };
    let inputs = data.train.inputs();
    if height * width != inputs {
        return Err(Error::Settings(format!(
            "--image-shape {height},{width} is {} pixels, but the data has {inputs} features per sample",
            height * width
        )));
    }
    let sets = [
        Some(&mut data.train),
        data.validation.as_mut(),
        data.test.as_mut(),
    ];
    for set in sets.into_iter().flatten() {
        match set.image_shape {
            Some(own) if own != (height, width) => {
                return Err(Error::Settings(format!(
                    "--image-shape {height},{width} contradicts the data's own image shape {},{}",
                    own.0, own.1
                )));
            }
            Some(_) => {}
            None => Arc::make_mut(set).image_shape = Some((height, width)),
        }
    }
    Ok(())
}
