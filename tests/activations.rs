//! GELU (exact, `nn.GELU()`), SiLU (`nn.SiLU`) and leaky ReLU (`nn.LeakyReLU`) as hidden
//! activations: the GPU against the CPU reference forward, backward (fused and unfused, with and
//! without dropout) and over training steps; the slope through the model file; He's gain for the
//! ReLU family; and the refusals. Their values and derivatives against formulas written anew are
//! in tests/reference (f64, finite differences) and tests/kernels (the shaders).

mod common;

use common::{assert_all_close, flat_parameters, gpu, one_hot, random_matrix};
use std::path::Path;
use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::dropout::Dropout;
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::{Activation, Fusion, GpuMlp, Init, Loss, Mlp, Regularization};

/// The three, leaky ReLU with a slope far from its default so that a lost slope shows.
const CASES: [(Activation, f32); 3] = [
    (Activation::Gelu, 0.01),
    (Activation::Silu, 0.01),
    (Activation::LeakyRelu, 0.3),
];

/// A 9-8-7-4 softmax cross-entropy network with `hidden` layers of leaky slope `slope`, and
/// random biases so that the hidden units sit on both sides of 0.
fn net(hidden: Activation, slope: f32, seed: u64) -> Mlp {
    let sizes = [9, 8, 7, 4];
    let (output, loss) = (Activation::Softmax, Loss::CrossEntropy);
    let mut mlp =
        Mlp::with_init_and_leaky_slope(&sizes, hidden, output, loss, Init::Auto, slope, seed)
            .unwrap();
    for (l, layer) in mlp.layers.iter_mut().enumerate() {
        layer.bias = random_matrix(1, layer.outputs(), seed + 10 + l as u64)
            .row(0)
            .mapv(|b| 0.5 * b);
    }
    mlp
}

fn wide(values: &Array2<f32>) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

#[test]
fn gpu_forward_and_gradients_match_the_cpu_fused_unfused_and_with_dropout() {
    let gpu = gpu();
    let rows = 11;
    let x = random_matrix(rows, 9, 1) * 2.0;
    let y = one_hot(rows, 4, 2);
    for (hidden, slope) in CASES {
        let mlp = net(hidden, slope, 3);
        let mut gpu_net = GpuMlp::new(&gpu, &mlp).unwrap();
        let forward = gpu_net.forward(x.view()).unwrap();
        let want = mlp.forward(x.view()).unwrap();
        assert_all_close(
            &format!("{hidden:?} forward"),
            &wide(&forward),
            &wide(&want),
            1e-6,
            1e-4,
        );
        let dropout = Dropout {
            input: 0.0,
            hidden: vec![0.5, 0.25],
        };
        gpu_net.set_dropout_seed(5).unwrap();
        for with_dropout in [false, true] {
            let (cpu_loss, cpu) = if with_dropout {
                gpu_net
                    .set_regularization(Regularization {
                        dropout: dropout.clone(),
                        ..Default::default()
                    })
                    .unwrap();
                // A network that has taken no step draws step 0's masks.
                let masks = dropout.masks(5, 0, rows, &mlp.sizes());
                mlp.loss_and_gradients_with_dropout(x.view(), y.view(), &masks)
                    .unwrap()
            } else {
                mlp.loss_and_gradients(x.view(), y.view()).unwrap()
            };
            for fusion in [Fusion::Fused, Fusion::Unfused] {
                gpu_net.set_fusion(fusion).unwrap();
                let (loss, grads) = gpu_net.loss_and_gradients(x.view(), y.view()).unwrap();
                let what = format!("{hidden:?} {fusion:?} dropout {with_dropout}");
                assert!(
                    (loss - cpu_loss).abs() <= 1e-5,
                    "{what}: loss {loss} vs {cpu_loss}"
                );
                for (l, (g, c)) in grads.layers.iter().zip(&cpu.layers).enumerate() {
                    let (gw, cw) = (wide(&g.dweight), wide(&c.dweight));
                    assert_all_close(&format!("{what} layer {l} dweight"), &gw, &cw, 1e-6, 1e-3);
                    let gb: Vec<f64> = g.dbias.iter().map(|&v| f64::from(v)).collect();
                    let cb: Vec<f64> = c.dbias.iter().map(|&v| f64::from(v)).collect();
                    assert_all_close(&format!("{what} layer {l} dbias"), &gb, &cb, 1e-6, 1e-3);
                }
            }
        }
    }
}

#[test]
fn gpu_training_steps_follow_the_cpu_reference() {
    let gpu = gpu();
    let (rows, lr) = (16, 0.5);
    for (hidden, slope) in CASES {
        let mut cpu = net(hidden, slope, 7);
        let mut gpu_net = GpuMlp::new(&gpu, &cpu).unwrap();
        for step in 0..4u64 {
            let x = random_matrix(rows, 9, 100 + step) * 2.0;
            let y = one_hot(rows, 4, 200 + step);
            cpu.train_step(x.view(), y.view(), lr).unwrap();
            gpu_net.train_step(x.view(), y.view(), lr).unwrap();
        }
        let trained = gpu_net.to_mlp().unwrap();
        assert_eq!(
            trained.leaky_slope, slope,
            "{hidden:?}: the GPU keeps the slope"
        );
        let (g, c) = (flat_parameters(&trained), flat_parameters(&cpu));
        assert_all_close(&format!("{hidden:?} after 4 steps"), &g, &c, 1e-5, 1e-3);
        // The steps moved the weights: a wrong g′ would not have gone unseen.
        let start = flat_parameters(&net(hidden, slope, 7));
        let moved = start
            .iter()
            .zip(&c)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(moved > 1e-2, "{hidden:?}: the weights moved {moved}");
    }
}

#[test]
fn the_slope_round_trips_through_the_model_file_and_a_bad_one_is_refused() {
    let path = Path::new("leaky.safetensors");
    let info = CheckpointInfo::default();
    let leaky = net(Activation::LeakyRelu, 0.3, 1);
    let bytes = checkpoint::to_bytes(&leaky, &info).unwrap();
    let (read, _) = checkpoint::from_bytes(&bytes, path).unwrap();
    assert_eq!(read, leaky);
    assert_eq!(read.leaky_slope, 0.3);
    // A model without leaky ReLU records no slope and reads back the default.
    let gelu = net(Activation::Gelu, wgpu_mlp::DEFAULT_LEAKY_SLOPE, 1);
    let bytes = checkpoint::to_bytes(&gelu, &info).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("leaky_slope"));
    assert_eq!(checkpoint::from_bytes(&bytes, path).unwrap().0, gelu);
    // A file whose slope is out of range or not a number is refused, naming the file. (Each
    // replacement has the length of "0.3", so the header's length still holds.)
    let bytes = checkpoint::to_bytes(&leaky, &info).unwrap();
    let recorded = b"\"leaky_slope\":\"0.3\"";
    let at = bytes
        .windows(recorded.len())
        .position(|w| w == recorded)
        .expect("the slope in the header");
    let value_at = at + recorded.len() - 4;
    for bad in ["1.5", "-.5", "NaN", "abc"] {
        let mut edited = bytes.clone();
        edited[value_at..value_at + 3].copy_from_slice(bad.as_bytes());
        let error = checkpoint::from_bytes(&edited, path)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("leaky.safetensors") && error.contains("slope"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn a_slope_outside_0_to_1_and_a_hidden_only_output_are_refused() {
    for slope in [-0.01, 1.0, 2.0, f32::NAN, f32::INFINITY] {
        let made = Mlp::with_init_and_leaky_slope(
            &[3, 4, 2],
            Activation::LeakyRelu,
            Activation::Identity,
            Loss::Mse,
            Init::Auto,
            slope,
            1,
        );
        let error = made.unwrap_err().to_string();
        assert!(error.contains("--leaky-slope"), "{slope}: {error}");
        let mut mlp = net(Activation::LeakyRelu, 0.3, 1);
        mlp.leaky_slope = slope;
        assert!(mlp.validate().is_err(), "{slope}");
    }
    for output in [Activation::Gelu, Activation::Silu, Activation::LeakyRelu] {
        let made = Mlp::new(&[3, 4, 2], Activation::Relu, output, Loss::Mse, 1);
        let error = made.and_then(|m| m.validate()).unwrap_err().to_string();
        assert!(
            error.contains("--output") && error.contains(output.name()),
            "{error}"
        );
    }
}

#[test]
fn auto_initialisation_gives_the_relu_family_kaimings_gain() {
    // torch.nn.init.kaiming_uniform_: bound = gain·√(3/fan_in), gain √2 for relu (and, here, for
    // gelu and silu), √(2/(1 + a²)) for leaky_relu with slope a; Xavier for tanh.
    let fan_in = 400.0f64;
    let cases = [
        (Activation::Relu, 0.01, (2.0 * 3.0 / fan_in).sqrt()),
        (Activation::Gelu, 0.01, (2.0 * 3.0 / fan_in).sqrt()),
        (Activation::Silu, 0.01, (2.0 * 3.0 / fan_in).sqrt()),
        (
            Activation::LeakyRelu,
            0.5,
            (2.0 / 1.25 * 3.0 / fan_in).sqrt(),
        ),
        (Activation::Tanh, 0.01, (6.0 / (fan_in + 300.0)).sqrt()),
    ];
    for (hidden, slope, bound) in cases {
        let mlp = Mlp::with_init_and_leaky_slope(
            &[400, 300, 2],
            hidden,
            Activation::Identity,
            Loss::Mse,
            Init::Auto,
            slope,
            3,
        )
        .unwrap();
        let largest = mlp.layers[0]
            .weight
            .iter()
            .fold(0.0f64, |m, &w| m.max(f64::from(w).abs()));
        // 120,000 uniform draws come within 0.1% of the bound and never pass it.
        assert!(
            largest <= bound && largest > 0.999 * bound,
            "{hidden:?}: largest |w| {largest}, bound {bound}"
        );
    }
}
