//! The fast CPU engine (`wgpu_mlp::fast`) and the trainer built on it against the ndarray
//! reference: losses, gradients, outputs and weights after several steps, within f32 rounding,
//! for every activation, loss, optimizer and regularizer; batches of 1, odd sizes and widths
//! across faer's blocking and the size where products go parallel.

mod common;

use common::{assert_close, assert_close2, one_hot, random_matrix, targets01};
use wgpu_mlp::dropout::Dropout;
use wgpu_mlp::fast;
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::{Activation, Gradients, Loss, Mlp};

/// `|fast − reference| ≤ atol + rtol·|reference|`: both are f32 and only the order of the sums
/// differs.
const ATOL: f32 = 2e-6;
const RTOL: f32 = 1e-3;

/// The (output activation, loss) pairs a model may use.
fn output_and_loss_pairs() -> Vec<(Activation, Loss)> {
    let mut pairs: Vec<(Activation, Loss)> =
        Activation::ALL.iter().map(|&a| (a, Loss::Mse)).collect();
    pairs.push((Activation::Softmax, Loss::CrossEntropy));
    pairs.push((Activation::Sigmoid, Loss::BinaryCrossEntropy));
    pairs
}

/// The activations a hidden layer may have.
fn hidden_activations() -> Vec<Activation> {
    Activation::ALL
        .into_iter()
        .filter(|&a| a != Activation::Softmax)
        .collect()
}

fn targets_for(loss: Loss, rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    match loss {
        Loss::CrossEntropy => one_hot(rows, cols, seed),
        Loss::BinaryCrossEntropy | Loss::Mse => targets01(rows, cols, seed),
    }
}

fn assert_gradients_close(what: &str, got: &Gradients, want: &Gradients) {
    assert_eq!(got.layers.len(), want.layers.len(), "{what}: layers");
    for (l, (g, w)) in got.layers.iter().zip(&want.layers).enumerate() {
        assert_close2(
            &format!("{what}: layer {l} dW"),
            g.dweight.view(),
            w.dweight.view(),
            ATOL,
            RTOL,
        );
        let (g, w) = (g.dbias.to_vec(), w.dbias.to_vec());
        assert_close(&format!("{what}: layer {l} db"), &g, &w, ATOL, RTOL);
    }
}

/// Loss and gradients of the fast engine and of the reference on one batch.
fn compare(mlp: &Mlp, rows: usize, seed: u64, what: &str) {
    let x = random_matrix(rows, mlp.inputs(), seed);
    let y = targets_for(mlp.loss, rows, mlp.outputs(), seed + 1);
    let (want_loss, want) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
    let (loss, got) = fast::loss_and_gradients(mlp, x.view(), y.view(), None).unwrap();
    assert_close(&format!("{what}: loss"), &[loss], &[want_loss], ATOL, RTOL);
    assert_gradients_close(what, &got, &want);
    let (want_outputs, want_loss) = mlp.forward_and_loss(x.view(), y.view()).unwrap();
    let (outputs, loss) = fast::forward_and_loss(mlp, x.view(), y.view()).unwrap();
    assert_close(
        &format!("{what}: eval loss"),
        &[loss],
        &[want_loss],
        ATOL,
        RTOL,
    );
    assert_close2(
        &format!("{what}: outputs"),
        outputs.view(),
        want_outputs.view(),
        ATOL,
        RTOL,
    );
}

#[test]
fn every_activation_and_loss_matches_the_reference() {
    for hidden in hidden_activations() {
        for (output, loss) in output_and_loss_pairs() {
            let mlp = Mlp::new(&[7, 13, 9, 5], hidden, output, loss, 3).unwrap();
            for rows in [1, 6, 17] {
                let what = format!(
                    "{} hidden, {} output, {}",
                    hidden.name(),
                    output.name(),
                    loss.name()
                );
                compare(
                    &mlp,
                    rows,
                    10 + rows as u64,
                    &format!("{what}, batch {rows}"),
                );
            }
        }
    }
}

#[test]
fn depths_one_to_four_match_the_reference() {
    for sizes in [&[5, 3][..], &[5, 8, 3], &[5, 8, 6, 3], &[5, 8, 6, 4, 3]] {
        let mlp = Mlp::new(
            sizes,
            Activation::Tanh,
            Activation::Softmax,
            Loss::CrossEntropy,
            5,
        )
        .unwrap();
        compare(&mlp, 9, 40, &format!("sizes {sizes:?}"));
    }
}

/// Widths and batches across faer's register and cache blocks (multiples of 16 and 48 and one
/// either side), and one product above the size at which products are split over the cores.
#[test]
fn sizes_across_the_blocking_match_the_reference() {
    for (sizes, rows) in [
        (vec![31, 33, 47, 10], 15),
        (vec![64, 65, 129, 10], 49),
        (vec![97, 255, 257, 11], 63),
        (vec![784, 300, 10], 130),
    ] {
        let mlp = Mlp::new(
            &sizes,
            Activation::Relu,
            Activation::Softmax,
            Loss::CrossEntropy,
            9,
        )
        .unwrap();
        compare(&mlp, rows, 70, &format!("sizes {sizes:?}, batch {rows}"));
    }
}

#[test]
fn dropout_masks_match_the_reference() {
    let mlp = Mlp::new(
        &[12, 20, 16, 4],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        2,
    )
    .unwrap();
    let dropout = Dropout {
        input: 0.2,
        hidden: vec![0.5, 0.3],
    };
    for (rows, step) in [(1, 0), (11, 7)] {
        let masks = dropout.masks(17, step, rows, &mlp.sizes());
        let x = random_matrix(rows, 12, step + 3);
        let y = one_hot(rows, 4, step + 4);
        let (want_loss, want) = mlp
            .loss_and_gradients_with_dropout(x.view(), y.view(), &masks)
            .unwrap();
        let (loss, got) = fast::loss_and_gradients(&mlp, x.view(), y.view(), Some(&masks)).unwrap();
        let what = format!("dropout, batch {rows}");
        assert_close(&format!("{what}: loss"), &[loss], &[want_loss], ATOL, RTOL);
        assert_gradients_close(&what, &got, &want);
        // The workspace's own draw is the same mask as the reference's.
        let mut workspace = fast::Workspace::new(&mlp, rows).unwrap();
        let (xs, ys) = workspace.batch_mut(rows);
        xs.copy_from_slice(x.as_slice().unwrap());
        ys.copy_from_slice(y.as_slice().unwrap());
        workspace.draw_masks(&dropout, 17, step, rows);
        let mut drawn = fast::zero_gradients(&mlp);
        let loss = workspace.loss_and_gradients(&mlp, rows, true, &mut drawn);
        assert_close(
            &format!("{what}: drawn loss"),
            &[loss],
            &[want_loss],
            ATOL,
            RTOL,
        );
        assert_gradients_close(&format!("{what}, drawn"), &drawn, &want);
    }
}

#[test]
fn bad_masks_are_refused() {
    let mlp = Mlp::new(
        &[4, 3, 2],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let x = random_matrix(2, 4, 1);
    let y = one_hot(2, 2, 2);
    let masks = Dropout {
        input: 0.5,
        hidden: vec![],
    }
    .masks(1, 0, 3, &mlp.sizes());
    let error = fast::loss_and_gradients(&mlp, x.view(), y.view(), Some(&masks))
        .unwrap_err()
        .to_string();
    assert!(error.contains("dropout mask of site 0"), "{error}");
    let error = fast::loss_and_gradients(&mlp, x.view(), random_matrix(2, 3, 3).view(), None)
        .unwrap_err()
        .to_string();
    assert!(error.contains('3'), "{error}");
}
