//! Helpers shared by the integration tests: the GPU context, seeded data, closeness checks that
//! report the worst difference and the first mismatches against a stated tolerance, a local
//! HTTP server for the download tests, and scratch folders for the tests that write files.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wgpu_mlp::gpu::kernels::KernelConfig;
use wgpu_mlp::ndarray::{Array2, ArrayView2};
use wgpu_mlp::rng::Rng;
use wgpu_mlp::{AdapterChoice, Gpu};

/// The GPU every test runs on: `WGPU_MLP_ADAPTER` (auto, software or a name) or auto. With no
/// adapter at all this fails the test, never skips it.
pub fn gpu() -> Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu =
            Gpu::new(adapter_choice()).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
        eprintln!("tests run on adapter: {}", gpu.adapter_description());
        gpu
    })
    .clone()
}

/// A GPU of its own on the same adapter as [`gpu`], with its kernel choices changed by `adjust`:
/// how CI's CPU adapter tests the kernels a real GPU gets, and the other way round.
pub fn gpu_with(adjust: impl FnOnce(&mut KernelConfig)) -> Gpu {
    Gpu::with_kernel_config(adapter_choice(), adjust)
        .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

/// The adapter the tests run on: `WGPU_MLP_ADAPTER`, or auto.
pub fn adapter_choice() -> AdapterChoice {
    std::env::var("WGPU_MLP_ADAPTER")
        .unwrap_or_else(|_| "auto".into())
        .parse()
        .unwrap()
}

/// A `(rows, cols)` matrix of uniform values in [-1, 1), fixed by `seed`.
pub fn random_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform(-1.0, 1.0) as f32)
}

/// One-hot rows: row r has a 1 in column (r·7 + seed) mod cols.
pub fn one_hot(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    let mut y = Array2::zeros((rows, cols));
    for r in 0..rows {
        y[[r, rng.below(cols as u64) as usize]] = 1.0;
    }
    y
}

/// Targets in (0, 1) for MSE and binary cross-entropy.
pub fn targets01(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform(0.05, 0.95) as f32)
}

/// An empty folder of its own for test `name` of `suite`, under the system's temporary folder.
pub fn scratch_dir(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-mlp-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names of everything in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A one-thread HTTP server on 127.0.0.1 that serves fixed files and counts the requests it gets.
pub struct Server {
    /// `http://127.0.0.1:PORT`, to which the files' URL paths are appended.
    pub url: String,
    requests: Arc<AtomicUsize>,
}

impl Server {
    /// How many requests it has answered, found or not.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Serves `files` (URL path → bytes), and 404 for any other path, until the test ends.
pub fn serve(files: Vec<(String, Vec<u8>)>) -> Server {
    serve_paced(files, usize::MAX, Duration::ZERO)
}

/// [`serve`], sending each body `chunk` bytes at a time with `pause` after each: a slow mirror,
/// for stopping a download while it runs.
pub fn serve_paced(files: Vec<(String, Vec<u8>)>, chunk: usize, pause: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                    break;
                }
            }
            // Counted before answering, so a client that has its answer sees the count.
            counted.fetch_add(1, Ordering::SeqCst);
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    for piece in body.chunks(chunk) {
                        // A client that hung up ends the answer.
                        if stream
                            .write_all(piece)
                            .and_then(|()| stream.flush())
                            .is_err()
                        {
                            break;
                        }
                        std::thread::sleep(pause);
                    }
                }
                None => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
        }
    });
    Server {
        url: format!("http://{address}"),
        requests,
    }
}

/// `|got − want| ≤ atol + rtol·|want|` for every element; panics with the worst difference and the
/// first mismatches otherwise. Returns the worst absolute difference.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) -> f32 {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, expected {}",
        got.len(),
        want.len()
    );
    let mut worst = 0.0f32;
    let mut mismatches = Vec::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let diff = (g - w).abs();
        // Written so that a NaN on either side counts as a mismatch.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(diff <= atol + rtol * w.abs()) {
            mismatches.push(format!("[{i}] got {g} want {w} (diff {diff:e})"));
        }
        if diff > worst || diff.is_nan() {
            worst = diff;
        }
    }
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {} values outside atol {atol:e} + rtol {rtol:e}; worst diff {worst:e}; first: {}",
        mismatches.len(),
        got.len(),
        mismatches
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    worst
}

/// [`assert_close`] for matrices.
pub fn assert_close2(
    what: &str,
    got: ArrayView2<f32>,
    want: ArrayView2<f32>,
    atol: f32,
    rtol: f32,
) -> f32 {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    let g: Vec<f32> = got.iter().copied().collect();
    let w: Vec<f32> = want.iter().copied().collect();
    assert_close(what, &g, &w, atol, rtol)
}

/// Matt Mazur, "A Step by Step Backpropagation Example" (2015): a 2-2-2 sigmoid network, one
/// sample, squared error ½Σ(target − out)², which equals PyTorch's mean MSE over two outputs.
// The constants keep the article's digits as printed.
#[allow(clippy::excessive_precision)]
pub mod worked_example {
    use wgpu_mlp::ndarray::{Array1, Array2, array};
    use wgpu_mlp::{Activation, Dense, Loss, Mlp};

    /// The article prints nine significant digits.
    pub const PUBLISHED_ATOL: f32 = 1e-7;

    pub const LOSS: f32 = 0.298371109;
    /// ∂E/∂w5 … ∂E/∂w8 (output layer, rows = outputs) and ∂E/∂w1 … ∂E/∂w4 (hidden layer).
    pub const DWEIGHT_OUTPUT: [f32; 4] = [0.082167041, 0.082667628, -0.022602540, -0.022740242];
    pub const DWEIGHT_HIDDEN: [f32; 4] = [0.000438568, 0.000877135, 0.000497713, 0.000995425];
    /// Weights after one step with learning rate 0.5 (Mazur leaves the biases alone; we do not).
    pub const UPDATED_OUTPUT: [f32; 4] = [0.35891648, 0.408666186, 0.511301270, 0.561370121];
    pub const UPDATED_HIDDEN: [f32; 4] = [0.149780716, 0.19956143, 0.24975114, 0.29950229];

    /// The network, its one input and its targets.
    pub fn network() -> (Mlp, Array2<f32>, Array2<f32>) {
        let layer = |w: [[f32; 2]; 2], b: f32| Dense {
            weight: Array2::from(w.to_vec()),
            bias: Array1::from_elem(2, b),
            activation: Activation::Sigmoid,
        };
        let mlp = Mlp {
            layers: vec![
                layer([[0.15, 0.20], [0.25, 0.30]], 0.35),
                layer([[0.40, 0.45], [0.50, 0.55]], 0.60),
            ],
            loss: Loss::Mse,
            leaky_slope: wgpu_mlp::DEFAULT_LEAKY_SLOPE,
        };
        (mlp, array![[0.05f32, 0.10]], array![[0.01f32, 0.99]])
    }
}

/// `|got − want| ≤ atol + rtol·|want|` for every f64 value, naming the first that is not.
pub fn assert_all_close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let allowed = atol + rtol * w.abs();
        assert!(
            (g - w).abs() <= allowed,
            "{what}: [{i}] is {g}, expected {w} (difference {:e}, allowed {allowed:e})",
            (g - w).abs()
        );
    }
}

/// Every parameter of `mlp`, weights then biases, layer by layer, in f64.
pub fn flat_parameters(mlp: &wgpu_mlp::Mlp) -> Vec<f64> {
    mlp.layers
        .iter()
        .flat_map(|l| l.weight.iter().chain(l.bias.iter()))
        .map(|&p| f64::from(p))
        .collect()
}

/// Trains `mlp` on `train` for `epochs` with `config` on the CPU reference and on the GPU,
/// asserting that each epoch's loss and the final parameters agree, and that the same run
/// without `config`'s regularization ends elsewhere (so that it did something); returns both
/// trainers.
pub fn cpu_and_gpu_agree<'a>(
    mlp: &wgpu_mlp::Mlp,
    (train, test): (&'a wgpu_mlp::Dataset, Option<&'a wgpu_mlp::Dataset>),
    config: &wgpu_mlp::TrainConfig,
    epochs: usize,
) -> (wgpu_mlp::CpuTrainer<'a>, wgpu_mlp::GpuTrainer) {
    use wgpu_mlp::{CpuTrainer, GpuTrainer, TrainConfig, Trainer};
    let mut on_cpu = CpuTrainer::new(mlp, train, test, config.clone()).unwrap();
    let mut on_gpu = GpuTrainer::new(&gpu(), mlp, train, test, config.clone()).unwrap();
    for epoch in 1..=epochs {
        let c = on_cpu.train_epoch(&mut |_| {}).unwrap().train_loss;
        let g = on_gpu.train_epoch(&mut |_| {}).unwrap().train_loss;
        assert!(
            (c - g).abs() <= 1e-4 + 1e-3 * c.abs(),
            "epoch {epoch}: cpu {c}, gpu {g}"
        );
    }
    let (c, g) = (on_cpu.to_mlp().unwrap(), on_gpu.to_mlp().unwrap());
    let (c, g) = (flat_parameters(&c), flat_parameters(&g));
    assert_all_close("gpu against cpu", &g, &c, 1e-4, 1e-3);
    let plain = TrainConfig {
        regularization: Default::default(),
        ..config.clone()
    };
    let mut without = CpuTrainer::new(mlp, train, None, plain).unwrap();
    for _ in 0..epochs {
        without.train_epoch(&mut |_| {}).unwrap();
    }
    assert_ne!(flat_parameters(&without.to_mlp().unwrap()), c);
    (on_cpu, on_gpu)
}
