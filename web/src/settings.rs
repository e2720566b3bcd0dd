//! A session's settings object (the names of the CLI's `train` options, see `web/API.md`) read
//! into the library's [`TrainSpec`], and the settings in force written back as such an object.
//! What a setting means — its default, what a model file records, the architecture check on a
//! continued model, the batch cap — is the library's (`wgpu_mlp::run`), as for the CLI.

use serde_json::{Map, Value};
use wgpu_mlp::augment::Augmentation;
use wgpu_mlp::checkpoint::CheckpointInfo;
use wgpu_mlp::dropout::parse_rates;
use wgpu_mlp::optim::Optimizer;
use wgpu_mlp::run::{Data, Resume, Settings, TrainSpec};
use wgpu_mlp::{Activation, Dataset, Error, Init, Loss, Mlp};

/// The keys a settings object may have.
const KEYS: [&str; 20] = [
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
    "train_size",
];

/// The spec `object` gives (a JSON object; `null` is every default) for training on `train`
/// and `test`, a new model or `resume`'s.
pub fn spec(
    object: &Value,
    (train, test): (Dataset, Dataset),
    resume: Option<Resume>,
) -> Result<TrainSpec, Error> {
    let fields = Fields::of(object)?;
    let mut spec = TrainSpec {
        data: Data::Sets {
            train,
            test: Some(test),
            name: fields
                .text("dataset")?
                .unwrap_or_else(|| "synthetic".into()),
        },
        tutorial: match fields.0.get("tutorial") {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(other) => {
                return Err(invalid(
                    "tutorial",
                    format!("{other} (must be true or false)"),
                ));
            }
        },
        layers: fields.layers()?,
        hidden: fields.named("hidden", Activation::from_name)?,
        leaky_slope: fields.number("leaky_slope")?,
        output: fields.named("output", Activation::from_name)?,
        loss: fields.named("loss", Loss::from_name)?,
        init: fields.named("init", init_from_name)?,
        optimizer: fields.named("optimizer", Optimizer::from_name)?,
        lr: fields.number("lr")?,
        weight_decay: fields.number("weight_decay")?,
        label_smoothing: fields.number("label_smoothing")?,
        clip_norm: fields.number("clip_norm")?,
        dropout: fields.rates("dropout")?,
        input_dropout: fields.number("input_dropout")?,
        augment: fields
            .text("augment")?
            .filter(|kinds| !kinds.is_empty())
            .map(|kinds| Augmentation::from_kinds(&kinds))
            .transpose()?,
        batch: fields.whole("batch")?.map(|b| b as usize),
        epochs: fields.whole("epochs")?.map(|e| e as usize),
        seed: fields.whole("seed")?,
        resume,
        ..TrainSpec::default()
    };
    spec.data_options.train_size = fields.whole("train_size")?.map(|n| n as usize);
    Ok(spec)
}

/// Every setting in force, as a settings object names it.
pub fn json(settings: &Settings, dataset: &str) -> Value {
    let mlp = &settings.mlp;
    let last = mlp.layers.len() - 1;
    let (optimizer, regularization) = (&settings.optimizer, &settings.regularization);
    serde_json::json!({
        "layers": mlp.sizes(),
        "hidden": mlp.layers[..last].first().map(|l| l.activation.name()),
        "leaky_slope": shortest(mlp.leaky_slope),
        "output": mlp.layers[last].activation.name(),
        "loss": mlp.loss.name(),
        "optimizer": optimizer.optimizer.name(),
        "lr": shortest(optimizer.learning_rate),
        "weight_decay": shortest(optimizer.weight_decay),
        "label_smoothing": shortest(regularization.label_smoothing),
        "clip_norm": regularization.clip_norm.map(shortest),
        "dropout": regularization.dropout.hidden_text(),
        "input_dropout": shortest(regularization.dropout.input),
        "augment": settings.augmentation.map(|(a, _)| a.kinds()),
        "batch": settings.batch,
        "epochs": settings.epochs,
        "seed": settings.seed,
        "dataset": dataset,
    })
}

/// What a loaded model's file says of its settings, as a settings object names them: its
/// architecture and the values it records.
pub fn recorded_json(mlp: &Mlp, info: &CheckpointInfo) -> Value {
    let last = mlp.layers.len() - 1;
    let mut object: Map<String, Value> = info
        .extra
        .iter()
        .filter(|(key, _)| KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), recorded_value(key, value)))
        .collect();
    object.insert("layers".into(), serde_json::json!(mlp.sizes()));
    object.insert(
        "hidden".into(),
        serde_json::json!(mlp.layers[..last].first().map(|l| l.activation.name())),
    );
    object.insert("leaky_slope".into(), shortest(mlp.leaky_slope).into());
    object.insert("output".into(), mlp.layers[last].activation.name().into());
    object.insert("loss".into(), mlp.loss.name().into());
    Value::Object(object)
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
