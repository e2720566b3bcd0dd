//! The CPU reference against central finite differences computed in f64, against a published
//! worked example, and on bad input.

mod common;

use common::{assert_close, one_hot, random_matrix, targets01, worked_example};
use wgpu_mlp::ndarray::{Array2, ArrayView2};
use wgpu_mlp::reference::{self, Layer64};
use wgpu_mlp::{Activation, Error, Loss, Mlp};

/// Central-difference step in f64: truncation error ~h², rounding ~1e-16/h.
const FD_STEP: f64 = 1e-6;
/// Analytic f64 gradient against finite differences.
const FD_ATOL: f64 = 1e-8;
const FD_RTOL: f64 = 1e-6;
/// The f32 gradients against the f64 ones.
const F32_ATOL: f32 = 1e-6;
const F32_RTOL: f32 = 1e-4;

fn targets_for(loss: Loss, rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    match loss {
        Loss::CrossEntropy => one_hot(rows, cols, seed),
        _ => targets01(rows, cols, seed),
    }
}

/// The smallest |z| of any ReLU layer: finite differences across ReLU's kink are meaningless, so
/// the check asserts that none is within reach of the step.
fn closest_relu_kink(layers: &[Layer64], x: ArrayView2<f32>) -> f64 {
    let mut input = x.mapv(f64::from);
    let mut closest = f64::INFINITY;
    for (weight, bias, activation) in layers {
        let z = input.dot(&weight.t()) + bias;
        if *activation == Activation::Relu {
            closest = z.iter().fold(closest, |m, v| m.min(v.abs()));
        }
        input = z.mapv(|v| activation.apply(v));
    }
    closest
}

/// Finite differences of every parameter against the analytic gradient; returns the worst
/// absolute difference.
fn gradient_check(mlp: &Mlp, x: ArrayView2<f32>, y: ArrayView2<f32>, what: &str) -> f64 {
    let layers = reference::layers_f64(mlp);
    assert!(
        closest_relu_kink(&layers, x) > 1e3 * FD_STEP,
        "{what}: a ReLU input is too close to 0 for finite differences"
    );
    let mut worst = 0.0f64;
    for check in reference::finite_difference_check(mlp, x, y, FD_STEP, usize::MAX).unwrap() {
        let (fd, exact) = (check.finite_difference, check.analytic);
        let error = (fd - exact).abs();
        assert!(
            error <= FD_ATOL + FD_RTOL * exact.abs(),
            "{what}: {}: finite difference {fd:e}, analytic {exact:e}",
            check.parameter
        );
        worst = worst.max(error);
    }
    let (_, analytic) = reference::loss_and_gradients_f64(&layers, mlp.loss, x, y);

    // The f32 path the GPU is compared with agrees with the f64 one.
    let (loss32, grads32) = mlp.loss_and_gradients(x, y).unwrap();
    let loss64 = reference::loss_f64(&layers, mlp.loss, x, y);
    assert_close(
        &format!("{what}: f32 loss"),
        &[loss32],
        &[loss64 as f32],
        F32_ATOL,
        F32_RTOL,
    );
    for (l, (g32, (dw, db))) in grads32.layers.iter().zip(&analytic).enumerate() {
        let dw32: Vec<f32> = dw.iter().map(|&v| v as f32).collect();
        let db32: Vec<f32> = db.iter().map(|&v| v as f32).collect();
        assert_close(
            &format!("{what}: f32 layer {l} dweight"),
            g32.dweight.as_slice().unwrap(),
            &dw32,
            F32_ATOL,
            F32_RTOL,
        );
        assert_close(
            &format!("{what}: f32 layer {l} dbias"),
            g32.dbias.as_slice().unwrap(),
            &db32,
            F32_ATOL,
            F32_RTOL,
        );
    }
    worst
}

#[test]
fn analytic_gradients_match_finite_differences_for_every_activation_loss_and_depth() {
    let widths = [5, 7, 6, 4, 3];
    let mut pairs: Vec<(Activation, Loss)> =
        Activation::ALL.iter().map(|&a| (a, Loss::Mse)).collect();
    pairs.push((Activation::Softmax, Loss::CrossEntropy));
    pairs.push((Activation::Sigmoid, Loss::BinaryCrossEntropy));
    let (mut worst, mut cases) = (0.0f64, 0);
    for depth in 1..=4 {
        for hidden in [
            Activation::Identity,
            Activation::Sigmoid,
            Activation::Relu,
            Activation::Tanh,
        ] {
            for &(output, loss) in &pairs {
                for batch in [1, 3, 7] {
                    // Seeds are searched for the first whose ReLU inputs keep clear of the kink.
                    let (mlp, x) = (0..100u64)
                        .map(|seed| {
                            let mut mlp =
                                Mlp::new(&widths[..=depth], hidden, output, loss, seed * 7 + cases);
                            for layer in &mut mlp.layers {
                                layer.bias.mapv_inplace(|_| 0.1); // non-zero biases exercise db
                            }
                            (mlp, random_matrix(batch, widths[0], seed + 1000 * cases))
                        })
                        .find(|(mlp, x)| {
                            closest_relu_kink(&reference::layers_f64(mlp), x.view()) > 1e3 * FD_STEP
                        })
                        .expect("a seed with every ReLU input away from 0");
                    let y = targets_for(loss, batch, widths[depth], cases);
                    let what = format!(
                        "{:?} {hidden:?}->{output:?} {loss:?} batch {batch}",
                        mlp.sizes()
                    );
                    worst = worst.max(gradient_check(&mlp, x.view(), y.view(), &what));
                    cases += 1;
                }
            }
        }
    }
    eprintln!("{cases} gradient checks; worst |finite difference − analytic|: {worst:e}");
}

#[test]
fn cpu_reproduces_the_published_worked_example() {
    let (mut mlp, x, y) = worked_example::network();
    let (loss, grads) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
    let atol = worked_example::PUBLISHED_ATOL;
    assert_close("loss", &[loss], &[worked_example::LOSS], atol, 0.0);
    assert_close(
        "output dweight",
        grads.layers[1].dweight.as_slice().unwrap(),
        &worked_example::DWEIGHT_OUTPUT,
        atol,
        0.0,
    );
    assert_close(
        "hidden dweight",
        grads.layers[0].dweight.as_slice().unwrap(),
        &worked_example::DWEIGHT_HIDDEN,
        atol,
        0.0,
    );
    assert_eq!(mlp.train_step(x.view(), y.view(), 0.5).unwrap(), loss);
    assert_close(
        "updated output weights",
        mlp.layers[1].weight.as_slice().unwrap(),
        &worked_example::UPDATED_OUTPUT,
        atol,
        0.0,
    );
    assert_close(
        "updated hidden weights",
        mlp.layers[0].weight.as_slice().unwrap(),
        &worked_example::UPDATED_HIDDEN,
        atol,
        0.0,
    );
}

#[test]
fn bad_input_is_an_error_naming_what_did_not_fit() {
    let mut mlp = Mlp::new(
        &[4, 5, 3],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    );
    let x = random_matrix(2, 4, 1);
    let y = one_hot(2, 3, 1);
    let message = |e: Error| e.to_string();

    assert!(
        message(
            mlp.loss(random_matrix(2, 5, 1).view(), y.view())
                .unwrap_err()
        )
        .contains("x is [2, 5]")
    );
    assert!(
        message(mlp.loss(x.view(), one_hot(3, 3, 1).view()).unwrap_err()).contains("y is [3, 3]")
    );
    assert!(message(mlp.forward(Array2::zeros((0, 4)).view()).unwrap_err()).contains("batch ≥ 1"));
    let mut nan = x.clone();
    nan[[0, 3]] = f32::NAN;
    assert!(
        message(mlp.loss_and_gradients(nan.view(), y.view()).unwrap_err())
            .contains("[0, 3] is NaN")
    );
    for lr in [0.0, -0.5, f32::NAN] {
        assert!(
            message(mlp.train_step(x.view(), y.view(), lr).unwrap_err()).contains("learning rate")
        );
    }
    let no_layers = Mlp {
        layers: vec![],
        loss: Loss::Mse,
    };
    assert!(message(no_layers.forward(x.view()).unwrap_err()).contains("no layers"));
    let mut wrong_output = mlp.clone();
    wrong_output.layers[1].activation = Activation::Sigmoid;
    assert!(
        message(wrong_output.loss(x.view(), y.view()).unwrap_err())
            .contains("needs a softmax output")
    );
    let mut hidden_softmax = Mlp::new(
        &[4, 5, 3],
        Activation::Softmax,
        Activation::Identity,
        Loss::Mse,
        1,
    );
    assert!(
        message(
            hidden_softmax
                .train_step(x.view(), y.view(), 0.1)
                .unwrap_err()
        )
        .contains("only supported on the output layer")
    );
}

#[test]
fn sgd_on_the_cpu_reduces_the_loss_and_reports_the_loss_before_the_step() {
    let mut mlp = Mlp::new(
        &[6, 8, 3],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        4,
    );
    let x = random_matrix(9, 6, 5);
    let y = one_hot(9, 3, 6);
    let first = mlp.loss(x.view(), y.view()).unwrap();
    let mut last = first;
    for _ in 0..20 {
        let before = mlp.loss(x.view(), y.view()).unwrap();
        last = mlp.train_step(x.view(), y.view(), 0.5).unwrap();
        assert_eq!(before, last);
    }
    assert!(
        mlp.loss(x.view(), y.view()).unwrap() < 0.5 * first,
        "loss {first} → {last}"
    );
}
