//! Bad input is an error naming what did not fit, and plain SGD moves every parameter as the
//! formula says.

use super::*;

#[test]
fn bad_input_is_an_error_naming_what_did_not_fit() {
    let mut mlp = Mlp::new(
        &[4, 5, 3],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let x = random_matrix(2, 4, 1);
    let y = one_hot(2, 3, 1);
    let message = |e: Error| e.to_string();

    let wrong_columns = random_matrix(2, 5, 1);
    assert!(message(mlp.loss(wrong_columns.view(), y.view()).unwrap_err()).contains("x is [2, 5]"));
    assert!(message(mlp.forward(wrong_columns.view()).unwrap_err()).contains("x is [2, 5]"));
    assert!(
        message(mlp.loss(x.view(), one_hot(3, 3, 1).view()).unwrap_err()).contains("y is [3, 3]")
    );
    assert!(
        message(mlp.loss(x.view(), one_hot(2, 4, 1).view()).unwrap_err()).contains("y is [2, 4]")
    );
    assert!(message(mlp.forward(Array2::zeros((0, 4)).view()).unwrap_err()).contains("batch ≥ 1"));

    let mut nan = x.clone();
    nan[[0, 3]] = f32::NAN;
    let error = message(mlp.loss_and_gradients(nan.view(), y.view()).unwrap_err());
    assert!(
        error.contains("invalid x") && error.contains("[0, 3] is NaN"),
        "{error}"
    );
    let mut infinite = y.clone();
    infinite[[1, 2]] = f32::INFINITY;
    let error = message(mlp.trace(x.view(), infinite.view()).unwrap_err());
    assert!(
        error.contains("invalid y") && error.contains("[1, 2] is inf"),
        "{error}"
    );

    let before = mlp.clone();
    for lr in [0.0, -0.5, f32::NAN, f32::INFINITY] {
        let error = message(mlp.train_step(x.view(), y.view(), lr).unwrap_err());
        assert!(error.contains("learning rate"), "{error}");
    }
    assert_eq!(mlp, before, "a refused step changes nothing");

    let (_, grads) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
    let error = message(mlp.apply_sgd(&grads, f32::NAN).unwrap_err());
    assert!(error.contains("learning rate"), "{error}");
    let one_layer = Gradients {
        layers: grads.layers[..1].to_vec(),
    };
    let error = message(mlp.apply_sgd(&one_layer, 0.1).unwrap_err());
    assert!(
        error.contains("1 layers of gradients for a 2-layer model"),
        "{error}"
    );
    let mut wrong_weight = grads.clone();
    wrong_weight.layers[1] = DenseGradients {
        dweight: Array2::zeros((3, 4)),
        dbias: Array1::zeros(3),
    };
    let error = message(mlp.apply_sgd(&wrong_weight, 0.1).unwrap_err());
    assert!(error.contains("layer 1 dweight is [3, 4]"), "{error}");
    let mut wrong_bias = grads.clone();
    wrong_bias.layers[0].dbias = Array1::zeros(4);
    let error = message(mlp.apply_sgd(&wrong_bias, 0.1).unwrap_err());
    assert!(error.contains("layer 0 dbias is [4]"), "{error}");
    assert_eq!(mlp, before, "refused updates change nothing");

    let no_layers = Mlp {
        layers: vec![],
        loss: Loss::Mse,
        leaky_slope: wgpu_mlp::DEFAULT_LEAKY_SLOPE,
    };
    assert!(message(no_layers.forward(x.view()).unwrap_err()).contains("no layers"));
    assert!(
        message(reference::loss_f64(&no_layers, x.view(), y.view()).unwrap_err())
            .contains("no layers")
    );

    let mut wrong_output = mlp.clone();
    wrong_output.layers[1].activation = Activation::Sigmoid;
    let error = message(wrong_output.loss(x.view(), y.view()).unwrap_err());
    assert!(
        error.contains("cross-entropy needs a softmax output"),
        "{error}"
    );
    let mut hidden_softmax = Mlp::new(
        &[4, 5, 3],
        Activation::Softmax,
        Activation::Identity,
        Loss::Mse,
        1,
    )
    .unwrap();
    let error = message(
        hidden_softmax
            .train_step(x.view(), y.view(), 0.1)
            .unwrap_err(),
    );
    assert!(
        error.contains("only supported on the output layer"),
        "{error}"
    );
    let mut nan_weight = mlp.clone();
    nan_weight.layers[0].weight[[1, 1]] = f32::NAN;
    let error = message(
        nan_weight
            .loss_and_gradients(x.view(), y.view())
            .unwrap_err(),
    );
    assert!(error.contains("layer 0 has a NaN"), "{error}");

    for step in [0.0, -1e-6, f64::NAN] {
        let error = reference::finite_difference_check(&mlp, x.view(), y.view(), step, 1);
        assert!(message(error.unwrap_err()).contains("finite-difference step"));
    }
    let error = reference::loss_and_gradients_f64(&mlp, nan.view(), y.view()).unwrap_err();
    assert!(message(error).contains("[0, 3] is NaN"));
}

#[test]
fn sgd_on_the_cpu_reduces_the_loss_and_reports_the_loss_before_the_step() {
    const LEARNING_RATE: f32 = 0.5;
    let mut mlp = Mlp::new(
        &[6, 8, 3],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        4,
    )
    .unwrap();
    let x = random_matrix(9, 6, 5);
    let y = one_hot(9, 3, 6);
    let first = mlp.loss(x.view(), y.view()).unwrap();
    for step in 0..20 {
        let before = mlp.loss(x.view(), y.view()).unwrap();
        // The step is exactly W − lr·dW, b − lr·db with the gradients before it.
        let mut expected = mlp.clone();
        let (_, grads) = expected.loss_and_gradients(x.view(), y.view()).unwrap();
        expected.apply_sgd(&grads, LEARNING_RATE).unwrap();
        assert_eq!(
            mlp.train_step(x.view(), y.view(), LEARNING_RATE).unwrap(),
            before,
            "step {step}"
        );
        assert_eq!(mlp, expected, "step {step}");
    }
    let last = mlp.loss(x.view(), y.view()).unwrap();
    assert!(last < 0.5 * first, "loss {first} → {last} after 20 steps");
}

#[test]
fn apply_sgd_moves_every_parameter_by_the_learning_rate_times_its_gradient() {
    let mut mlp = Mlp::new(
        &[3, 4, 2],
        Activation::Sigmoid,
        Activation::Identity,
        Loss::Mse,
        8,
    )
    .unwrap();
    let before = mlp.clone();
    let grads = Gradients {
        layers: mlp
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| DenseGradients {
                dweight: random_matrix(layer.outputs(), layer.inputs(), 20 + l as u64),
                dbias: random_matrix(1, layer.outputs(), 30 + l as u64)
                    .row(0)
                    .to_owned(),
            })
            .collect(),
    };
    mlp.apply_sgd(&grads, 0.25).unwrap();
    for (l, ((after, old), grad)) in mlp
        .layers
        .iter()
        .zip(&before.layers)
        .zip(&grads.layers)
        .enumerate()
    {
        let want_weight = &old.weight - &(0.25 * &grad.dweight);
        let want_bias = &old.bias - &(0.25 * &grad.dbias);
        assert_close2(
            &format!("layer {l} weight"),
            after.weight.view(),
            want_weight.view(),
            0.0,
            f32::EPSILON,
        );
        assert_close(
            &format!("layer {l} bias"),
            &after.bias.to_vec(),
            &want_bias.to_vec(),
            0.0,
            f32::EPSILON,
        );
    }
}
