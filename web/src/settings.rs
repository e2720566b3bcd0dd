//! A session's settings from the page's object, with the names and defaults of the CLI's
//! `train` options (`src/bin/wgpu-mlp/settings.rs`), and what a saved model records of them.

use std::collections::HashMap;

use serde_json::{Map, Value};
use wgpu_mlp::augment::Augmentation;
use wgpu_mlp::data::files::Task;
use wgpu_mlp::dropout::{Dropout, parse_rates};
use wgpu_mlp::optim::{Optimizer, OptimizerConfig};
use wgpu_mlp::train::{DEFAULT_SEED, Defaults, Regularization, TrainConfig};
use wgpu_mlp::{Activation, Error, Init, Loss, Mlp};

/// The layers of a new model: MNIST's widths around the CLI's default hidden layer.
const DEFAULT_LAYERS: [usize; 3] = [784, 128, 10];

/// The keys a settings object may have.
const KEYS: [&str; 19] = [
    "tutorial",
    "layers",
    "hidden",
    "leaky_slope",
    "output",
    "loss",
    "init",
    "optimizer",
    "lr",
    "weight_decay",
    "label_smoothing",
    "clip_norm",
    "dropout",
    "input_dropout",
    "augment",
    "batch",
    "epochs",
    "seed",
    "dataset",
];

/// Everything a session trains with.
pub struct Settings {
    /// The new model (its initial weights), or the loaded one.
    pub mlp: Mlp,
    /// The update rule and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Label smoothing and gradient clipping.
    pub regularization: Regularization,
    /// Samples per step, capped at the training set's size.
    pub batch: usize,
    /// Epochs the summary counts against.
    pub epochs: usize,
    /// Seeds the weights and the shuffles.
    pub seed: u64,
    /// The data set's name, for the summary and the saved model.
    pub dataset: String,
    /// Deformations of the training images (`"augment": "affine,elastic"`, the CLI's default
    /// ranges), and the image shape they assume once the session has its data.
    pub augmentation: Option<Augmentation>,
    pub image_shape: Option<(usize, usize)>,
}

impl Settings {
    /// The settings `object` gives (a JSON object; `null` is every default), for a new model on
    /// a training set of `train_len` samples.
    pub fn new_model(object: &Value, train_len: usize) -> Result<Settings, Error> {
        let fields = Fields::of(object)?;
        let defaults = fields.defaults()?;
        let seed = fields.whole("seed")?.unwrap_or(DEFAULT_SEED);
        let layers = fields.layers()?.unwrap_or_else(|| DEFAULT_LAYERS.to_vec());
        let output = fields.named("output", Activation::from_name)?;
        let loss = defaults.loss_for(output, fields.named("loss", Loss::from_name)?);
        let model = Defaults {
            hidden: fields
                .named("hidden", Activation::from_name)?
                .unwrap_or(defaults.hidden),
            output: defaults.output_for(output, loss),
            loss,
            init: fields
                .named("init", init_from_name)?
                .unwrap_or(defaults.init),
            leaky_slope: fields
                .number("leaky_slope")?
                .unwrap_or(defaults.leaky_slope),
            ..defaults
        };
        if fields.0.contains_key("leaky_slope") && model.hidden != Activation::LeakyRelu {
            return Err(invalid(
                "leaky_slope",
                format!(
                    "is the slope of \"hidden\": \"leaky-relu\", but the hidden layers are {}",
                    model.hidden.name()
                ),
            ));
        }
        let mlp = model.mlp(&layers, seed)?;
        mlp.validate()?;
        fields.rest(mlp, seed, train_len, &defaults)
    }

    /// The settings `object` gives for continuing to train `mlp`, a loaded model whose file
    /// recorded `recorded` (the CLI's `--resume` rules: the file's values unless the object
    /// gives others; architecture keys, if given, must agree).
    pub fn continuing(
        mlp: Mlp,
        recorded: &HashMap<String, String>,
        object: &Value,
        train_len: usize,
    ) -> Result<Settings, Error> {
        let mut merged: Map<String, Value> = recorded
            .iter()
            .filter(|(key, _)| KEYS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), recorded_value(key, value)))
            .collect();
        let given = Fields::of(object)?;
        check_architecture(&mlp, &given)?;
        merged.extend(given.0.clone());
        for key in ["layers", "hidden", "leaky_slope", "output", "loss", "init"] {
            merged.remove(key);
        }
        let fields = Fields(merged);
        let seed = fields.whole("seed")?.unwrap_or(DEFAULT_SEED);
        // A file that does not record a setting predates the task defaults: it was trained with
        // the tutorial's. The epochs are this session's, as for a new model.
        let session = fields.defaults()?;
        let defaults = Defaults {
            epochs: session.epochs,
            steps: session.steps,
            ..Defaults::UNRECORDED
        };
        fields.rest(mlp, seed, train_len, &defaults)
    }

    /// The training configuration.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            optimizer: self.optimizer,
            batch_size: self.batch,
            seed: self.seed,
            regularization: self.regularization.clone(),
        }
    }

    /// Every setting, as a settings object names it.
    pub fn json(&self) -> serde_json::Value {
        let last = self.mlp.layers.len() - 1;
        serde_json::json!({
            "layers": self.mlp.sizes(),
            "hidden": self.mlp.layers[..last].first().map(|l| l.activation.name()),
            "leaky_slope": shortest(self.mlp.leaky_slope),
            "output": self.mlp.layers[last].activation.name(),
            "loss": self.mlp.loss.name(),
            "optimizer": self.optimizer.optimizer.name(),
            "lr": shortest(self.optimizer.learning_rate),
            "weight_decay": shortest(self.optimizer.weight_decay),
            "label_smoothing": shortest(self.regularization.label_smoothing),
            "clip_norm": self.regularization.clip_norm.map(shortest),
            "dropout": self.regularization.dropout.hidden_text(),
            "input_dropout": shortest(self.regularization.dropout.input),
            "augment": self.augmentation.map(|a| a.kinds()),
            "batch": self.batch,
            "epochs": self.epochs,
            "seed": self.seed,
            "dataset": self.dataset,
        })
    }

    /// What a saved model records beside its architecture, as the CLI's `--save` writes it.
    pub fn recorded(&self) -> HashMap<String, String> {
        [
            ("optimizer", self.optimizer.optimizer.name().to_string()),
            ("lr", self.optimizer.learning_rate.to_string()),
            ("weight_decay", self.optimizer.weight_decay.to_string()),
            ("batch", self.batch.to_string()),
            ("dataset", self.dataset.clone()),
            ("seed", self.seed.to_string()),
            (
                "label_smoothing",
                self.regularization.label_smoothing.to_string(),
            ),
        ]
        .into_iter()
        .chain(
            self.regularization
                .clip_norm
                .map(|max_norm| ("clip_norm", max_norm.to_string())),
        )
        .chain([
            ("dropout", self.regularization.dropout.hidden_text()),
            (
                "input_dropout",
                self.regularization.dropout.input.to_string(),
            ),
        ])
        .chain(
            self.augmentation
                .zip(self.image_shape)
                .map(|(augmentation, shape)| augmentation.metadata(shape))
                .unwrap_or_default(),
        )
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }
}

/// `value` as the f64 its shortest f32 text reads as (0.002, not 0.0020000000949949026).
fn shortest(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// A recorded metadata value as the settings object would give it: numbers for the numeric keys.
fn recorded_value(key: &str, value: &str) -> Value {
    match key {
        "lr" | "weight_decay" | "label_smoothing" | "clip_norm" | "input_dropout" | "batch"
        | "seed" | "epochs" => value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(value.into()), Value::Number),
        _ => Value::String(value.into()),
    }
}

/// Refuses architecture keys that describe another model than `mlp`.
fn check_architecture(mlp: &Mlp, given: &Fields) -> Result<(), Error> {
    let contradiction = |why: String| Err(Error::Model(why));
    if let Some(layers) = given.layers()?
        && layers != mlp.sizes()
    {
        return contradiction(format!(
            "layers {layers:?} contradict the model, whose layers are {:?}",
            mlp.sizes()
        ));
    }
    let last = mlp.layers.len() - 1;
    let checks = [
        (
            "hidden",
            mlp.layers[..last].first().map(|l| l.activation.name()),
        ),
        ("output", Some(mlp.layers[last].activation.name())),
        ("loss", Some(mlp.loss.name())),
    ];
    for (key, actual) in checks {
        if let (Some(asked), Some(actual)) = (given.text(key)?, actual)
            && asked != actual
        {
            return contradiction(format!("{key} {asked} contradicts the model's {actual}"));
        }
    }
    if let Some(asked) = given.number("leaky_slope")?
        && asked != mlp.leaky_slope
    {
        return contradiction(format!(
            "leaky_slope {asked} contradicts the model's {}",
            mlp.leaky_slope
        ));
    }
    Ok(())
}

fn init_from_name(name: &str) -> Result<Init, Error> {
    [Init::Auto, Init::Xavier, Init::He]
        .into_iter()
        .find(|init| init.name() == name)
        .ok_or_else(|| {
            invalid(
                "init",
                format!("unknown init {name:?}; expected one of auto, xavier, he"),
            )
        })
}

fn invalid(what: &str, why: String) -> Error {
    Error::Invalid {
        what: what.into(),
        why,
    }
}

/// A settings object's fields, `null`s dropped.
struct Fields(Map<String, Value>);

impl Fields {
    /// The fields of `object`: an error for anything but an object or `null`, and for a key
    /// that is not a setting.
    fn of(object: &Value) -> Result<Fields, Error> {
        let map = match object {
            Value::Null => Map::new(),
            Value::Object(map) => map.clone(),
            other => return Err(invalid("settings", format!("{other} is not an object"))),
        };
        if let Some(key) = map.keys().find(|key| !KEYS.contains(&key.as_str())) {
            return Err(invalid(
                "settings",
                format!("unknown key {key:?}; the keys are {}", KEYS.join(", ")),
            ));
        }
        Ok(Fields(
            map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        ))
    }

    /// The defaults the object chooses: the tutorial's network with `"tutorial": true`, else
    /// the classification defaults (the page's sets are all classes).
    fn defaults(&self) -> Result<Defaults, Error> {
        Ok(match self.0.get("tutorial") {
            None | Some(Value::Bool(false)) => Defaults::for_task(Task::Classification),
            Some(Value::Bool(true)) => Defaults::tutorial(Task::Classification),
            Some(other) => {
                return Err(invalid(
                    "tutorial",
                    format!("{other} (must be true or false)"),
                ));
            }
        })
    }

    /// The optimizer, batch, epochs and data set, completing a model and its seed, with
    /// `defaults` for what the object leaves out.
    fn rest(
        &self,
        mlp: Mlp,
        seed: u64,
        train_len: usize,
        defaults: &Defaults,
    ) -> Result<Settings, Error> {
        let rule = self
            .named("optimizer", Optimizer::from_name)?
            .unwrap_or(defaults.optimizer.optimizer);
        let optimizer = OptimizerConfig {
            optimizer: rule,
            learning_rate: self
                .number("lr")?
                .unwrap_or(defaults.optimizer.learning_rate),
            weight_decay: self
                .number("weight_decay")?
                .unwrap_or(rule.default_weight_decay(defaults.optimizer.weight_decay)),
        };
        optimizer.validate()?;
        let regularization = Regularization {
            label_smoothing: self.number("label_smoothing")?.unwrap_or(0.0),
            clip_norm: self.number("clip_norm")?,
            dropout: Dropout {
                input: self.number("input_dropout")?.unwrap_or(0.0),
                hidden: match self.rates("dropout")? {
                    Some(rates) => Dropout::hidden_rates(&rates, mlp.layers.len() - 1)?,
                    None => Vec::new(),
                },
            },
        };
        regularization.validate(mlp.loss, mlp.layers.len() - 1)?;
        let batch = self
            .whole("batch")?
            .map_or(defaults.batch_size, |b| b as usize);
        let epochs = self
            .whole("epochs")?
            .map_or_else(|| defaults.epochs_for(train_len, batch), |e| e as usize);
        if epochs == 0 {
            return Err(invalid(
                "epochs",
                "0: nothing to train (give at least 1)".into(),
            ));
        }
        Ok(Settings {
            mlp,
            optimizer,
            regularization,
            // A batch larger than the training set is the whole set, as the CLI does.
            batch: if batch > train_len && train_len > 0 {
                train_len
            } else {
                batch
            },
            epochs,
            seed,
            dataset: self.text("dataset")?.unwrap_or_else(|| "synthetic".into()),
            augmentation: self
                .text("augment")?
                .filter(|kinds| !kinds.is_empty())
                .map(|kinds| Augmentation::from_kinds(&kinds))
                .transpose()?,
            image_shape: None,
        })
    }

    fn text(&self, key: &str) -> Result<Option<String>, Error> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(invalid(key, format!("{other} (must be a string)"))),
        }
    }

    fn named<T>(&self, key: &str, parse: fn(&str) -> Result<T, Error>) -> Result<Option<T>, Error> {
        self.text(key)?.map(|name| parse(&name)).transpose()
    }

    /// One probability (a number) or a comma list of them (a string), as `--dropout` takes.
    fn rates(&self, key: &str) -> Result<Option<Vec<f32>>, Error> {
        match self.0.get(key) {
            Some(Value::String(text)) => parse_rates(text).map(Some),
            _ => Ok(self.number(key)?.map(|p| vec![p])),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f32>, Error> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64().map(|n| n as f32)),
            Some(Value::String(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| invalid(key, format!("{text:?} (must be a number)"))),
            Some(other) => Err(invalid(key, format!("{other} (must be a number)"))),
        }
    }

    fn whole(&self, key: &str) -> Result<Option<u64>, Error> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_f64().map(|n| crate::js::whole(n, key)).transpose(),
            Some(Value::String(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| invalid(key, format!("{text:?} (must be a whole number)"))),
            Some(other) => Err(invalid(key, format!("{other} (must be a whole number)"))),
        }
    }

    /// `layers`: an array of sizes, or text as the CLI's `--layers` takes it (`784,128,10`).
    fn layers(&self) -> Result<Option<Vec<usize>>, Error> {
        let bad = |why: String| invalid("layers", why);
        match self.0.get("layers") {
            None => Ok(None),
            Some(Value::Array(sizes)) => sizes
                .iter()
                .map(|size| {
                    size.as_u64()
                        .map(|s| s as usize)
                        .ok_or_else(|| bad(format!("{size} is not a layer size")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(text)) => text
                .split(',')
                .map(|size| {
                    size.trim()
                        .parse()
                        .map_err(|_| bad(format!("{size:?} is not a layer size")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(bad(format!("{other} (must be an array of sizes)"))),
        }
    }
}
