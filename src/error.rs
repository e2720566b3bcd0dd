//! The crate's one error type and its `Result` alias.
//!
//! Variants are grouped by where the failure comes from: the caller's input, the model, the GPU.
//! Every message names what was wrong, so that a user can fix it without reading the source.

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `wgpu-mlp`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- the caller's input ------------------------------------------------------------------
    /// An array does not have the shape an operation needs.
    #[error("shape mismatch: {what} is {actual:?} but must be {expected}")]
    Shape {
        /// Which array, e.g. "x" or "layer 1 weight".
        what: String,
        /// The shape that was passed.
        actual: Vec<usize>,
        /// The shape (or rule) it must follow, in words.
        expected: String,
    },
    /// A value is outside the range an operation accepts (a learning rate of NaN, batch 0, …).
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The offending argument.
        what: String,
        /// Why it was refused.
        why: String,
    },

    /// A training run's settings contradict each other, its data, or what a model file records;
    /// the message names the settings as the CLI's options (`--lr`, `--layers`) and the file.
    #[error("{0}")]
    Settings(String),

    /// A data file (IDX images or labels) is missing, truncated or malformed.
    #[error("data file {path}: {why}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's reason.
        source: std::io::Error,
    },

    // ---- the model ---------------------------------------------------------------------------
    /// The model is inconsistent (no layers, sizes that do not chain, softmax in a hidden layer…).
    #[error("invalid model: {0}")]
    Model(String),

    /// Training diverged: the loss stopped being a finite number.
    #[error(
        "training diverged: the loss stopped being a finite number in epoch {epoch}, at step {step} of {steps} \
         (learning rate {learning_rate}, weight decay {weight_decay}); {}",
        divergence_advice(*learning_rate, *weight_decay)
    )]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// Steps in the epoch.
        steps: usize,
        /// The learning rate in use.
        learning_rate: f32,
        /// The weight decay in use.
        weight_decay: f32,
    },

    // ---- the GPU -----------------------------------------------------------------------------
    /// No adapter matched the request.
    #[error("{0}")]
    NoAdapter(String),
    /// The adapter refused to create a device.
    #[error("could not open a device on adapter {adapter:?}: {source}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's reason.
        source: wgpu::RequestDeviceError,
    },
    /// A model or batch needs more than the device allows.
    #[error(
        "{what} needs {needed} bytes but the adapter {adapter:?} allows at most {limit} ({limit_name})"
    )]
    DeviceLimit {
        /// What was being allocated, e.g. "layer 2 weight".
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// The adapter's limit in bytes.
        limit: u64,
        /// The name of the wgpu limit, e.g. `max_storage_buffer_binding_size`.
        limit_name: &'static str,
        /// The adapter's name.
        adapter: String,
    },
    /// wgpu reported an error (validation, out of memory, internal) for a named operation.
    #[error("GPU error during {during}: {message}")]
    Gpu {
        /// The operation that failed, e.g. "creating buffer layer1.weight".
        during: String,
        /// wgpu's description.
        message: String,
    },
    /// Reading results back from the GPU failed or did not finish in time.
    #[error("reading {what} back from the GPU failed: {why}")]
    Readback {
        /// What was being read.
        what: String,
        /// Why it failed (timeout, device lost, map error).
        why: String,
    },
    /// Work was stopped by its [`StopFlag`](crate::train::StopFlag) (Ctrl-C, SIGTERM): training
    /// between steps, a download between chunks.
    #[error("interrupted {during}")]
    Interrupted {
        /// Where it stopped, e.g. "in epoch 3, after 1280 of its samples".
        during: String,
    },

    /// The device was lost (driver reset, GPU removed, out of memory on some backends).
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),

    /// A kernel needs more of a device limit, or a feature, than the device was opened with.
    #[error("{kernel} cannot run on this device: {why}")]
    Unsupported {
        /// The kernel, e.g. "the Tiled matmul with tile 16×16 invocations of 8×8".
        kernel: String,
        /// What it needs and what the device has, naming the wgpu limit or feature.
        why: String,
    },
}

/// What to try after a divergence: a weight decay large enough to push every weight across zero
/// and back by itself (`lr·λ ≥ 1`) is the cause whatever the gradients; otherwise the step size.
fn divergence_advice(learning_rate: f32, weight_decay: f32) -> &'static str {
    if learning_rate * weight_decay >= 1.0 {
        "the weight decay is too large for this learning rate (lr × weight decay must stay well below 1)"
    } else if weight_decay > 0.0 {
        "try a lower learning rate or weight decay"
    } else {
        "try a lower learning rate"
    }
}

impl Error {
    /// Shorthand for [`Error::Shape`].
    pub(crate) fn shape(
        what: impl Into<String>,
        actual: &[usize],
        expected: impl Into<String>,
    ) -> Self {
        Error::Shape {
            what: what.into(),
            actual: actual.to_vec(),
            expected: expected.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub(crate) fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            why: why.into(),
        }
    }
}
