//! Every gradient computed on the GPU against the CPU reference: every activation, every loss,
//! depths 1–4, batch 1 and odd batches, layer widths that straddle the matmul tiles.

mod common;

use common::{assert_close, assert_close2, gpu, one_hot, random_matrix, targets01, worked_example};
use wgpu_mlp::gpu::kernels::MatmulStrategy;
use wgpu_mlp::gradcheck::{self, Tensor, Tolerance};
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::ndarray::array;
use wgpu_mlp::{Activation, DenseGradients, Error, Gpu, GpuMlp, Gradients, Loss, Mlp};

/// `|gpu − cpu| ≤ atol + rtol·|cpu|` for losses and gradients: both are f32 and only the order
/// of the sums differs.
const TOLERANCE: Tolerance = Tolerance::GPU_VS_CPU;

/// The (output activation, loss) pairs a model may use.
fn output_and_loss_pairs() -> Vec<(Activation, Loss)> {
    let mut pairs: Vec<(Activation, Loss)> = Activation::ALL
        .iter()
        .filter(|a| !a.is_hidden_only())
        .map(|&a| (a, Loss::Mse))
        .collect();
    pairs.push((Activation::Softmax, Loss::CrossEntropy));
    pairs.push((Activation::Sigmoid, Loss::BinaryCrossEntropy));
    pairs
}

fn targets_for(loss: Loss, rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    match loss {
        Loss::CrossEntropy => one_hot(rows, cols, seed),
        Loss::BinaryCrossEntropy | Loss::Mse => targets01(rows, cols, seed),
    }
}

/// Compares loss and gradients; returns the worst absolute gradient difference.
fn compare(net: &mut GpuMlp, mlp: &Mlp, x: &Array2<f32>, y: &Array2<f32>, what: &str) -> f32 {
    let (cpu_loss, cpu) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
    let (gpu_loss, gpu_grads) = net.loss_and_gradients(x.view(), y.view()).unwrap();
    assert_close(
        &format!("{what}: loss"),
        &[gpu_loss],
        &[cpu_loss],
        TOLERANCE.atol,
        TOLERANCE.rtol,
    );
    let comparison = gradcheck::compare(&gpu_grads, &cpu, TOLERANCE).unwrap();
    assert!(comparison.passed(), "{what}: {comparison}");
    comparison.largest_difference
}

#[test]
fn gpu_gradients_match_cpu_for_every_activation_loss_depth_and_batch() {
    let gpu = gpu();
    let widths = [13, 17, 5, 11, 4];
    let mut worst = 0.0f32;
    let mut cases = 0;
    for depth in 1..=4 {
        // Softmax only ends a network.
        for hidden in Activation::ALL
            .into_iter()
            .filter(|&a| a != Activation::Softmax)
        {
            if depth == 1 && hidden != Activation::Identity {
                continue; // a one-layer network has no hidden activation
            }
            for (output, loss) in output_and_loss_pairs() {
                let sizes = &widths[..=depth];
                let seed = cases as u64;
                let mlp = Mlp::new(sizes, hidden, output, loss, seed).unwrap();
                let mut net = GpuMlp::new(&gpu, &mlp).unwrap();
                for batch in [1, 3, 7] {
                    let x = random_matrix(batch, sizes[0], seed * 31 + batch as u64);
                    let y = targets_for(loss, batch, sizes[depth], seed * 17 + batch as u64);
                    let what = format!("{sizes:?} {hidden:?}->{output:?} {loss:?} batch {batch}");
                    worst = worst.max(compare(&mut net, &mlp, &x, &y, &what));
                    cases += 1;
                }
            }
        }
    }
    eprintln!("{cases} cases; worst |gpu − cpu| gradient difference: {worst:e}");
}

#[test]
fn gpu_gradients_match_cpu_across_tile_boundaries() {
    let gpu = gpu();
    // Widths and batches on both sides of the 64-wide matmul tile, and a batch past the default
    // capacity (256), which makes the network reallocate its batch buffers.
    let mlp = Mlp::new(
        &[65, 63, 64, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        5,
    )
    .unwrap();
    let mut net = GpuMlp::new(&gpu, &mlp).unwrap();
    let mut worst = 0.0f32;
    for batch in [65, 1, 257, 63] {
        let x = random_matrix(batch, 65, batch as u64);
        let y = one_hot(batch, 10, batch as u64);
        worst = worst.max(compare(&mut net, &mlp, &x, &y, &format!("batch {batch}")));
    }
    assert!(net.batch_capacity() >= 257);
    eprintln!("worst |gpu − cpu| gradient difference: {worst:e}");
}

#[test]
fn the_shared_memory_kernels_gpus_get_also_match_cpu() {
    // CI has only a CPU adapter, which gets the register-blocked matmul and serial column sums;
    // run whole networks with the shared-memory matmul and split column sums a real GPU gets,
    // so that their paths are tested end to end too.
    let gpu = common::gpu_with(|config| {
        config.matmul = MatmulStrategy::Tiled;
        config.split_column_sums = true;
    });
    assert_eq!(gpu.config().matmul, MatmulStrategy::Tiled);
    let worst = worst_gradient_difference(&gpu);
    eprintln!("Tiled matmul: worst |gpu − cpu| gradient difference: {worst:e}");
}

/// Trains a few small networks on `gpu` against the CPU reference; the worst difference.
fn worst_gradient_difference(gpu: &Gpu) -> f32 {
    let mut worst = 0.0f32;
    for (sizes, hidden, output, loss) in [
        (
            &[65, 63, 64, 10][..],
            Activation::Relu,
            Activation::Softmax,
            Loss::CrossEntropy,
        ),
        (
            &[13, 17, 5][..],
            Activation::Sigmoid,
            Activation::Sigmoid,
            Loss::Mse,
        ),
        (
            &[9, 70, 4][..],
            Activation::Tanh,
            Activation::Identity,
            Loss::Mse,
        ),
        // Long k and few output tiles: the shared-memory matmul splits both forward products
        // over k (MatmulSplit), and batches 1 and 7 reshape the split dispatches.
        (
            &[200, 130, 3][..],
            Activation::Relu,
            Activation::Softmax,
            Loss::CrossEntropy,
        ),
    ] {
        let mlp = Mlp::new(sizes, hidden, output, loss, 3).unwrap();
        let mut net = GpuMlp::new(gpu, &mlp).unwrap();
        for batch in [1, 7, 65] {
            let x = random_matrix(batch, sizes[0], batch as u64);
            let y = targets_for(loss, batch, sizes[sizes.len() - 1], batch as u64);
            let what = format!("{:?} {sizes:?} batch {batch}", gpu.config().matmul);
            worst = worst.max(compare(&mut net, &mlp, &x, &y, &what));
        }
    }
    worst
}

#[test]
fn gpu_forward_matches_cpu_forward() {
    let gpu = gpu();
    for (output, loss) in output_and_loss_pairs() {
        let mlp = Mlp::new(&[9, 33, 7], Activation::Tanh, output, loss, 3).unwrap();
        let mut net = GpuMlp::new(&gpu, &mlp).unwrap();
        let x = random_matrix(19, 9, 4);
        let want = mlp.forward(x.view()).unwrap();
        let got = net.forward(x.view()).unwrap();
        assert_close2(
            &format!("forward {output:?}"),
            got.view(),
            want.view(),
            1e-6,
            1e-4,
        );
    }
}

#[test]
fn upload_and_download_round_trip_exactly() {
    let gpu = gpu();
    let mlp = Mlp::new(
        &[7, 65, 3],
        Activation::Sigmoid,
        Activation::Identity,
        Loss::Mse,
        11,
    )
    .unwrap();
    let mut net = GpuMlp::new(&gpu, &mlp).unwrap();
    assert_eq!(net.to_mlp().unwrap(), mlp);
}

#[test]
fn bad_input_is_an_error_naming_what_did_not_fit() {
    let gpu = gpu();
    let mlp = Mlp::new(
        &[4, 5, 3],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let mut net = GpuMlp::new(&gpu, &mlp).unwrap();
    let x = random_matrix(2, 4, 1);
    let y = one_hot(2, 3, 1);

    let message = |e: Error| e.to_string();
    let wrong_x = net
        .loss_and_gradients(random_matrix(2, 5, 1).view(), y.view())
        .unwrap_err();
    assert!(message(wrong_x).contains("x"), "wrong x columns");
    let wrong_y = net
        .train_step(x.view(), one_hot(3, 3, 1).view(), 0.1)
        .unwrap_err();
    assert!(message(wrong_y).contains("y is [3, 3]"));
    let empty = net.forward(Array2::zeros((0, 4)).view()).unwrap_err();
    assert!(message(empty).contains("batch"));
    let mut nan = x.clone();
    nan[[1, 2]] = f32::NAN;
    assert!(
        message(net.train_step(nan.view(), y.view(), 0.1).unwrap_err()).contains("[1, 2] is NaN")
    );
    for lr in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(
            message(net.train_step(x.view(), y.view(), lr).unwrap_err()).contains("learning rate")
        );
    }

    let mismatched = Mlp::new(
        &[4, 3],
        Activation::Relu,
        Activation::Sigmoid,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    assert!(
        message(GpuMlp::new(&gpu, &mismatched).unwrap_err()).contains("needs a softmax output")
    );
    let empty_model = Mlp::new(&[4], Activation::Relu, Activation::Sigmoid, Loss::Mse, 1).unwrap();
    assert!(message(GpuMlp::new(&gpu, &empty_model).unwrap_err()).contains("no layers"));
    let zero_width = Mlp::new(
        &[4, 0, 3],
        Activation::Relu,
        Activation::Sigmoid,
        Loss::Mse,
        1,
    )
    .unwrap();
    assert!(message(GpuMlp::new(&gpu, &zero_width).unwrap_err()).contains("at least 1"));

    // Errors leave the network usable.
    net.train_step(x.view(), y.view(), 0.1).unwrap();
    assert!(net.last_loss().unwrap().is_finite());
}

#[test]
fn gpu_reproduces_the_published_worked_example() {
    let (mlp, x, y) = worked_example::network();
    let mut net = GpuMlp::new(&gpu(), &mlp).unwrap();

    let (loss, grads) = net.loss_and_gradients(x.view(), y.view()).unwrap();
    assert_close(
        "loss",
        &[loss],
        &[worked_example::LOSS],
        worked_example::PUBLISHED_ATOL,
        0.0,
    );
    assert_close(
        "output dweight",
        grads.layers[1].dweight.as_slice().unwrap(),
        &worked_example::DWEIGHT_OUTPUT,
        worked_example::PUBLISHED_ATOL,
        0.0,
    );
    assert_close(
        "hidden dweight",
        grads.layers[0].dweight.as_slice().unwrap(),
        &worked_example::DWEIGHT_HIDDEN,
        worked_example::PUBLISHED_ATOL,
        0.0,
    );

    net.train_step(x.view(), y.view(), 0.5).unwrap();
    assert_close(
        "loss of the step",
        &[net.last_loss().unwrap()],
        &[worked_example::LOSS],
        worked_example::PUBLISHED_ATOL,
        0.0,
    );
    let trained = net.to_mlp().unwrap();
    assert_close(
        "updated output weights",
        trained.layers[1].weight.as_slice().unwrap(),
        &worked_example::UPDATED_OUTPUT,
        worked_example::PUBLISHED_ATOL,
        0.0,
    );
    assert_close(
        "updated hidden weights",
        trained.layers[0].weight.as_slice().unwrap(),
        &worked_example::UPDATED_HIDDEN,
        worked_example::PUBLISHED_ATOL,
        0.0,
    );
}

/// Two layers of gradients with the given first-layer weights, everything else equal on both
/// sides.
fn gradients(first: [f32; 4]) -> Gradients {
    Gradients {
        layers: vec![
            DenseGradients {
                dweight: Array2::from_shape_vec((2, 2), first.to_vec()).unwrap(),
                dbias: array![0.5f32, -0.25],
            },
            DenseGradients {
                dweight: array![[1.0f32, -2.0]],
                dbias: array![3.0f32],
            },
        ],
    }
}

#[test]
fn gradcheck_judges_small_gradients_by_their_size_not_by_an_absolute_tolerance() {
    // Reference first-layer gradients of 1e-4: a 20% error (2e-5) is far inside an absolute 1e-4
    // but outside 2e-6 + 1e-3·1e-4 = 2.1e-6, by 2e-5/2.1e-6 ≈ 9.52 times.
    let reference = gradients([1e-4, -1e-4, 1e-4, 0.0]);
    let checked = gradients([1e-4, -1e-4, 1.2e-4, 0.0]);
    let comparison = gradcheck::compare(&checked, &reference, Tolerance::GPU_VS_CPU).unwrap();
    assert!(!comparison.passed());
    assert_eq!(comparison.failed, 1);
    assert_eq!(comparison.compared, 4 + 2 + 2 + 1);
    let worst = comparison.worst.unwrap();
    assert_eq!(
        (worst.layer, worst.tensor, worst.index),
        (0, Tensor::Weight, 2)
    );
    assert_eq!((worst.value, worst.reference), (1.2e-4, 1e-4));
    let allowed = 2e-6 + 1e-3 * 1e-4;
    assert!((worst.allowed - allowed).abs() < 1e-12, "{}", worst.allowed);
    assert!(
        (worst.ratio - 2e-5 / allowed).abs() < 1e-3,
        "{}",
        worst.ratio
    );
    assert!((comparison.largest_difference - 2e-5).abs() < 1e-9);
    let report = comparison.to_string();
    assert!(
        report.starts_with("1 of 9 gradients outside") && report.contains("layer 0 dweight[2]"),
        "{report}"
    );

    // The same error on a gradient of 1 is inside 2e-6 + 1e-3·1 (the relative part).
    let reference = gradients([1.0, 1.0, 1.0, 1.0]);
    let checked = gradients([1.0, 1.0, 1.0 + 2e-5, 1.0]);
    let comparison = gradcheck::compare(&checked, &reference, Tolerance::GPU_VS_CPU).unwrap();
    assert!(comparison.passed(), "{comparison}");
    let worst = comparison.worst.unwrap();
    assert!(worst.ratio > 0.0 && worst.ratio < 0.02, "{}", worst.ratio);
}

#[test]
fn gradcheck_fails_nan_and_refuses_mismatched_shapes() {
    let reference = gradients([1.0, 2.0, 3.0, 4.0]);
    let same = gradcheck::compare(&reference, &reference, Tolerance::GPU_VS_CPU).unwrap();
    assert!(same.passed());
    assert_eq!(same.largest_difference, 0.0);
    assert_eq!(same.worst.unwrap().ratio, 0.0);

    let mut nan = reference.clone();
    nan.layers[1].dbias[0] = f32::NAN;
    let comparison = gradcheck::compare(&nan, &reference, Tolerance::GPU_VS_CPU).unwrap();
    assert!(!comparison.passed());
    let worst = comparison.worst.unwrap();
    assert_eq!(
        (worst.layer, worst.tensor, worst.index),
        (1, Tensor::Bias, 0)
    );
    assert_eq!(worst.ratio, f32::INFINITY);

    let fewer = Gradients {
        layers: reference.layers[..1].to_vec(),
    };
    let error = gradcheck::compare(&fewer, &reference, Tolerance::GPU_VS_CPU).unwrap_err();
    assert!(
        error.to_string().contains("1 layers checked against 2"),
        "{error}"
    );
    let mut wider = reference.clone();
    wider.layers[1].dweight = array![[1.0f32, -2.0, 0.0]];
    let error = gradcheck::compare(&wider, &reference, Tolerance::GPU_VS_CPU).unwrap_err();
    assert!(error.to_string().contains("layer 1 dweight"), "{error}");
    let negative = Tolerance {
        atol: -1.0,
        rtol: 0.0,
    };
    let error = gradcheck::compare(&reference, &reference, negative).unwrap_err();
    assert!(error.to_string().contains("tolerance"), "{error}");
}
