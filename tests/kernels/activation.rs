//! `shaders/activation.wgsl`: each activation forward and backward, softmax included.

use crate::common::{assert_close, gpu, random_matrix};
use crate::expected::{
    activate, activate_with_slope, derivative_from_kept, derivative_from_kept_with_slope,
    softmax_backward, softmax_rows,
};
use crate::{ELEMENTWISE_ATOL, ELEMENTWISE_RTOL, run_and_read, shapes, upload};
use wgpu_mlp::Activation;
use wgpu_mlp::gpu::kernels::activation::ActivationKernel;
use wgpu_mlp::ndarray::{Array2, Axis};

/// Probabilities of one softmax row add up to 1 within a few units of f32 rounding per term.
const SOFTMAX_ROW_SUM_ATOL_PER_COL: f32 = 2e-7;

fn assert_all_finite(what: &str, values: &[f32]) {
    let first = values.iter().position(|v| !v.is_finite());
    assert!(
        first.is_none(),
        "{what}: {} of {} values are not finite, the first at {first:?}",
        values.iter().filter(|v| !v.is_finite()).count(),
        values.len()
    );
}

fn run_activation(kernel: ActivationKernel, first: &Array2<f32>, second: &Array2<f32>) -> Vec<f32> {
    let gpu = gpu();
    let (rows, cols) = first.dim();
    let out = gpu.storage_buffer("out", rows * cols).unwrap();
    let dispatch = kernel
        .bind(
            &gpu,
            "activation test",
            rows,
            cols,
            &upload(first),
            &upload(second),
            &out,
        )
        .unwrap();
    run_and_read(&gpu, &dispatch, &out, rows * cols)
}

#[test]
fn activation_forward_and_backward_match_ndarray() {
    for (rows, cols) in shapes() {
        let z = random_matrix(rows, cols, (rows * cols) as u64) * 4.0;
        let da = random_matrix(rows, cols, 7);
        for act in Activation::ALL {
            let what = format!("{act:?} {rows}x{cols}");
            let a = if act == Activation::Softmax {
                softmax_rows(&z)
            } else {
                z.mapv(|v| activate(act, v))
            };
            let got = run_activation(ActivationKernel::Forward(act), &z, &z);
            assert_close(
                &format!("{what} forward"),
                &got,
                a.as_slice().unwrap(),
                ELEMENTWISE_ATOL,
                ELEMENTWISE_RTOL,
            );

            // Backward reads what the layer keeps: z for GELU and SiLU, a for the others.
            let kept = if act.keeps_preactivation() { &z } else { &a };
            let dz = if act == Activation::Softmax {
                softmax_backward(&a, &da)
            } else {
                &da * &kept.mapv(|v| derivative_from_kept(act, v))
            };
            let got = run_activation(ActivationKernel::Backward(act), kept, &da);
            assert_close(
                &format!("{what} backward"),
                &got,
                dz.as_slice().unwrap(),
                ELEMENTWISE_ATOL,
                ELEMENTWISE_RTOL,
            );
        }
    }
}

#[test]
fn softmax_is_finite_and_exact_for_large_logits_and_any_row_length() {
    for (rows, cols) in [(5, 10), (3, 1), (2, 1000), (257, 3)] {
        let what = format!("softmax ±100 {rows}x{cols}");
        let mut z = random_matrix(rows, cols, 3) * 100.0;
        // The extremes in one row: −100 everywhere but the last column, +100 there, so that a
        // maximum taken over less than the whole row would overflow exp.
        z.row_mut(0).fill(-100.0);
        z[[0, cols - 1]] = 100.0;
        let got = run_activation(ActivationKernel::Forward(Activation::Softmax), &z, &z);
        assert_all_finite(&what, &got);
        let want = softmax_rows(&z);
        assert_close(
            &what,
            &got,
            want.as_slice().unwrap(),
            ELEMENTWISE_ATOL,
            ELEMENTWISE_RTOL,
        );
        let a = Array2::from_shape_vec((rows, cols), got).unwrap();
        let row_sums = a.sum_axis(Axis(1));
        assert_close(
            &format!("{what} row sums"),
            row_sums.as_slice().unwrap(),
            &vec![1.0; rows],
            SOFTMAX_ROW_SUM_ATOL_PER_COL * cols as f32,
            0.0,
        );

        let da = random_matrix(rows, cols, 11);
        let got = run_activation(ActivationKernel::Backward(Activation::Softmax), &a, &da);
        assert_all_finite(&format!("{what} backward"), &got);
        assert_close(
            &format!("{what} backward"),
            &got,
            softmax_backward(&a, &da).as_slice().unwrap(),
            ELEMENTWISE_ATOL,
            ELEMENTWISE_RTOL,
        );
    }
    // Sigmoid and tanh saturate instead of overflowing.
    let z = random_matrix(5, 10, 3) * 100.0;
    for act in [Activation::Sigmoid, Activation::Tanh] {
        let got = run_activation(ActivationKernel::Forward(act), &z, &z);
        assert_close(
            &format!("{act:?} ±100"),
            &got,
            z.mapv(|v| activate(act, v)).as_slice().unwrap(),
            0.0,
            ELEMENTWISE_RTOL,
        );
    }
}

#[test]
fn leaky_relu_reads_the_slope_it_is_bound_with_and_keeps_it_when_reshaped() {
    let gpu = gpu();
    let (rows, cols) = (6, 9);
    let z = random_matrix(rows, cols, 21) * 3.0;
    let da = random_matrix(rows, cols, 22);
    let slope = 0.3;
    let a = z.mapv(|v| activate_with_slope(Activation::LeakyRelu, v, slope));
    let dz = &da * &a.mapv(|v| derivative_from_kept_with_slope(Activation::LeakyRelu, v, slope));
    let (z_buffer, a_buffer, da_buffer) = (upload(&z), upload(&a), upload(&da));
    let out = gpu.storage_buffer("out", rows * cols).unwrap();
    for (kernel, operands, want) in [
        (
            ActivationKernel::Forward(Activation::LeakyRelu),
            [&z_buffer, &z_buffer],
            &a,
        ),
        (
            ActivationKernel::Backward(Activation::LeakyRelu),
            [&a_buffer, &da_buffer],
            &dz,
        ),
    ] {
        let [first, second] = operands;
        let mut dispatch = kernel
            .bind_with_slope(&gpu, "leaky", (rows, cols), slope, [first, second, &out])
            .unwrap();
        let got = run_and_read(&gpu, &dispatch, &out, rows * cols);
        let what = format!("{kernel:?} slope {slope}");
        let want = want.as_slice().unwrap();
        assert_close(&what, &got, want, ELEMENTWISE_ATOL, ELEMENTWISE_RTOL);
        // Reshaped to its first rows, it keeps the slope.
        kernel.reshape(&gpu, &mut dispatch, 2, cols).unwrap();
        let got = run_and_read(&gpu, &dispatch, &out, 2 * cols);
        let what = format!("{what}, reshaped");
        let want = &want[..2 * cols];
        assert_close(&what, &got, want, ELEMENTWISE_ATOL, ELEMENTWISE_RTOL);
    }
}

#[test]
fn gelu_on_the_gpu_is_within_1e_6_of_the_exact_erf_form() {
    // WGSL has no erf: the shader's approximation must keep GELU and GELU′ within 1e-6 of
    // z·Φ(z) and Φ(z) + z·φ(z) with libm's erf, over a dense grid through the region where
    // erf bends.
    let z = Array2::from_shape_fn((1, 4001), |(_, i)| (i as f32 - 2000.0) * 0.004);
    let ones = Array2::from_elem(z.dim(), 1.0f32);
    let forward = run_activation(ActivationKernel::Forward(Activation::Gelu), &z, &z);
    let backward = run_activation(ActivationKernel::Backward(Activation::Gelu), &z, &ones);
    for (i, &v) in z.iter().enumerate() {
        let exact = activate(Activation::Gelu, v);
        let slope = derivative_from_kept(Activation::Gelu, v);
        assert!(
            (forward[i] - exact).abs() <= 1e-6,
            "GELU({v}) = {} vs {exact}",
            forward[i]
        );
        assert!(
            (backward[i] - slope).abs() <= 1e-6,
            "GELU′({v}) = {} vs {slope}",
            backward[i]
        );
    }
}
