//! Models too large to build: a layer that needs more memory than there is, or sizes whose
//! parameter count overflows, are errors naming the size, from the library and from every
//! command that builds a model, never an allocation abort.

use std::process::{Command, Output};

use wgpu_mlp::{Activation, Init, Loss, Mlp};

/// 784 → 10⁸ → 10: the first weight alone is 7.84·10¹⁰ values, 313.6 GB.
const HUGE: &[usize] = &[784, 100_000_000, 10];

/// Whether the system reports the memory available. Where it does not, the library skips the
/// check and relies on a fallible allocation, which some systems grant for memory they do not
/// have, so the huge-model tests only run where the check runs.
fn memory_is_reported() -> bool {
    std::fs::read_to_string("/proc/meminfo").is_ok_and(|m| m.contains("MemAvailable:"))
}

fn new(sizes: &[usize]) -> wgpu_mlp::Result<Mlp> {
    Mlp::new(sizes, Activation::Relu, Activation::Identity, Loss::Mse, 1)
}

#[test]
fn a_layer_larger_than_memory_is_an_error_naming_its_size() {
    if !memory_is_reported() {
        return;
    }
    for result in [
        new(HUGE),
        Mlp::with_init(
            HUGE,
            Activation::Tanh,
            Activation::Softmax,
            Loss::CrossEntropy,
            Init::He,
            3,
        ),
    ] {
        let error = result.unwrap_err().to_string();
        assert!(
            error.starts_with("invalid model: layer 0 weight [100000000, 784] needs 313.6 GB"),
            "{error}"
        );
        assert!(
            error.contains("79500000010 parameters needs 1.3 TB"),
            "{error}"
        );
        assert!(error.contains("GB of memory available"), "{error}");
    }
}

#[test]
fn sizes_whose_parameter_count_overflows_are_errors() {
    let error = new(&[usize::MAX, 2]).unwrap_err().to_string();
    assert!(
        error.contains("layer 0 weight [2, 18446744073709551615]"),
        "{error}"
    );
    assert!(
        error.contains("has more elements than this machine can address"),
        "{error}"
    );
    for sizes in [&[usize::MAX, 1][..], &[3, 1 << 62]] {
        let error = new(sizes).unwrap_err().to_string();
        assert!(
            error.contains("more parameters than this machine can address"),
            "{sizes:?}: {error}"
        );
    }
}

#[test]
fn models_that_fit_keep_the_weights_their_seed_always_gave() {
    let mlp = new(&[3, 4, 2]).unwrap();
    assert_eq!(mlp.sizes(), [3, 4, 2]);
    assert_eq!(mlp.parameter_count(), 3 * 4 + 4 + 4 * 2 + 2);
    // The first draws of seed 1, row-major, scaled to He's ±√(6/3) for the ReLU layer.
    let mut rng = wgpu_mlp::rng::Rng::new(1);
    let limit = 2f64.sqrt();
    let expected: Vec<f32> = (0..12).map(|_| rng.uniform(-limit, limit) as f32).collect();
    assert_eq!(
        mlp.layers[0].weight.iter().copied().collect::<Vec<_>>(),
        expected
    );
    assert!(mlp.layers.iter().all(|l| l.bias.iter().all(|&b| b == 0.0)));
    // Sizes that cannot form a model are still built, for `validate` to name the fault.
    assert!(
        new(&[4])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
            .contains("no layers")
    );
    assert!(
        new(&[4, 0, 3])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least 1")
    );
}

fn wgpu_mlp(args: &[&str]) -> Output {
    let runtime = std::env::temp_dir().join("wgpu-mlp-xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    Command::new(env!("CARGO_BIN_EXE_wgpu-mlp"))
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .unwrap()
}

/// Runs `wgpu-mlp` with `args` and `--layers layers`, expecting exit status 1 and an error line
/// containing every one of `parts`.
fn refused(args: &[&str], layers: &str, parts: &[&str]) {
    let mut all = args.to_vec();
    all.extend(["--layers", layers]);
    let output = wgpu_mlp(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "wgpu-mlp {all:?}: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| {
            panic!("wgpu-mlp {all:?}: no error line in {stderr}");
        });
    for part in parts {
        assert!(
            line.contains(part),
            "wgpu-mlp {all:?}: {part:?} not in {line}"
        );
    }
}

#[test]
fn train_and_gradcheck_refuse_a_model_larger_than_memory() {
    if !memory_is_reported() {
        return;
    }
    let parts = [
        "layer 0 weight [100000000, 784] needs 313.6 GB",
        "of memory available",
    ];
    for args in [&["train"][..], &["train", "--cpu"], &["gradcheck"]] {
        refused(args, "784,100000000,10", &parts);
    }
}

#[test]
fn train_and_gradcheck_refuse_sizes_that_overflow() {
    // The outer widths are the synthetic set's, so that the data does not refuse the layers
    // first.
    let parts = [
        "layer 0 weight [18446744073709551615, 784]",
        "has more elements than this machine can address",
    ];
    for args in [&["train"][..], &["train", "--cpu"], &["gradcheck"]] {
        refused(args, "784,18446744073709551615,10", &parts);
    }
}
