//! What every one-dimensional kernel shares: reshaping a bound dispatch, refusing bad shapes,
//! short buffers and aliased outputs before anything runs, and folding grids past the adapter's
//! per-dimension limit.

use crate::common::{self, assert_close, gpu, random_matrix};
use crate::expected::softmax_rows;
use crate::{
    COLUMN_SUM_ATOL, COLUMN_SUM_RTOL, ELEMENTWISE_ATOL, ELEMENTWISE_RTOL, run_and_read, upload,
    upload_to, upload_with_capacity,
};
use wgpu_mlp::gpu::kernels::activation::ActivationKernel;
use wgpu_mlp::gpu::kernels::elementwise::{Elementwise, Update};
use wgpu_mlp::gpu::kernels::reduce::{ColumnSum, Sum};
use wgpu_mlp::gpu::kernels::transpose::Transpose;
use wgpu_mlp::gpu::kernels::{Dispatch, KernelConfig};
use wgpu_mlp::ndarray::{Array2, Axis};
use wgpu_mlp::{Activation, AdapterChoice, Error, Gpu};

/// A `(7, 63)` matrix in buffers that hold a `(65, 70)` one, for kernels bound for that
/// capacity and then reshaped down to the matrix: the GPU, the capacity, the matrix's shape, the
/// matrix, its buffer and an output buffer.
type Reshaped = (
    Gpu,
    (usize, usize),
    (usize, usize),
    Array2<f32>,
    wgpu::Buffer,
    wgpu::Buffer,
);

fn reshaped() -> Reshaped {
    let gpu = gpu();
    let capacity = (65, 70);
    let (rows, cols) = (7, 63);
    let len = capacity.0 * capacity.1;
    let m = random_matrix(rows, cols, 8);
    let input = upload_with_capacity(&m, len);
    let out = gpu.storage_buffer("out", len).unwrap();
    (gpu, capacity, (rows, cols), m, input, out)
}

/// A reshape past the bound buffers is refused, naming the buffer that is short.
fn too_big(error: Error) {
    let message = error.to_string();
    assert!(
        matches!(error, Error::Invalid { .. }) && message.contains("holds"),
        "{message}"
    );
}

#[test]
fn reductions_and_transposes_reshape_to_a_smaller_shape_and_refuse_a_larger_one() {
    let (gpu, capacity, (rows, cols), m, input, out) = reshaped();
    let len = capacity.0 * capacity.1;
    let mut column_sum =
        ColumnSum::bind(&gpu, "column sum", capacity.0, capacity.1, &input, &out).unwrap();
    ColumnSum::reshape(&gpu, &mut column_sum, rows, cols).unwrap();
    assert_close(
        "column sums reshaped",
        &run_and_read(&gpu, &column_sum, &out, cols),
        m.sum_axis(Axis(0)).as_slice().unwrap(),
        COLUMN_SUM_ATOL,
        COLUMN_SUM_RTOL,
    );
    too_big(ColumnSum::reshape(&gpu, &mut column_sum, capacity.0 + 1, capacity.1).unwrap_err());

    let mut sum = Sum::bind(&gpu, "sum", len, &input, &out).unwrap();
    Sum::reshape(&gpu, &mut sum, rows * cols).unwrap();
    assert_close(
        "sum reshaped",
        &run_and_read(&gpu, &sum, &out, 1),
        &[m.sum()],
        COLUMN_SUM_ATOL,
        COLUMN_SUM_RTOL,
    );
    too_big(Sum::reshape(&gpu, &mut sum, len + 1).unwrap_err());

    let mut transpose =
        Transpose::bind(&gpu, "transpose", capacity.0, capacity.1, &input, &out).unwrap();
    Transpose::reshape(&gpu, &mut transpose, rows, cols).unwrap();
    assert_close(
        "transpose reshaped",
        &run_and_read(&gpu, &transpose, &out, rows * cols),
        m.t().as_standard_layout().as_slice().unwrap(),
        0.0,
        0.0,
    );
    too_big(Transpose::reshape(&gpu, &mut transpose, capacity.0, capacity.1 + 1).unwrap_err());
}

#[test]
fn activations_and_updates_reshape_to_a_smaller_shape_and_refuse_a_larger_one() {
    let (gpu, capacity, (rows, cols), m, input, out) = reshaped();
    let len = capacity.0 * capacity.1;
    let softmax = ActivationKernel::Forward(Activation::Softmax);
    let mut activation = softmax
        .bind(
            &gpu, "softmax", capacity.0, capacity.1, &input, &input, &out,
        )
        .unwrap();
    softmax.reshape(&gpu, &mut activation, rows, cols).unwrap();
    assert_close(
        "softmax reshaped",
        &run_and_read(&gpu, &activation, &out, rows * cols),
        softmax_rows(&m).as_slice().unwrap(),
        ELEMENTWISE_ATOL,
        ELEMENTWISE_RTOL,
    );
    too_big(
        softmax
            .reshape(&gpu, &mut activation, len + 1, 1)
            .unwrap_err(),
    );

    // A new alpha as well as a new shape.
    let y = upload_with_capacity(&m, len);
    let mut update = Update::Axpy(1.0)
        .bind(&gpu, "axpy", capacity.0, capacity.1, &input, &y)
        .unwrap();
    Update::Axpy(2.0)
        .reshape(&gpu, &mut update, rows, cols)
        .unwrap();
    assert_close(
        "axpy reshaped",
        &run_and_read(&gpu, &update, &y, rows * cols),
        (&m * 3.0).as_slice().unwrap(),
        ELEMENTWISE_ATOL,
        ELEMENTWISE_RTOL,
    );
    too_big(
        Update::Axpy(2.0)
            .reshape(&gpu, &mut update, capacity.0 + 1, capacity.1)
            .unwrap_err(),
    );

    // A dispatch of another kernel is refused rather than misread.
    let error = Elementwise::Hadamard
        .reshape(&gpu, &mut update, rows, cols)
        .unwrap_err();
    assert!(error.to_string().contains("not bound by"), "{error}");
}

/// Buffers of 10, 10, 10 and 3 values for the refusal tests.
fn ten_ten_ten_three(gpu: &Gpu) -> [wgpu::Buffer; 4] {
    [
        ("ten", 10),
        ("other ten", 10),
        ("out ten", 10),
        ("three", 3),
    ]
    .map(|(label, len)| gpu.storage_buffer(label, len).unwrap())
}

/// `result` is an [`Error::Invalid`] whose message contains `needle`.
fn refused(result: Result<Dispatch, Error>, needle: &str) {
    match result {
        Err(error @ Error::Invalid { .. }) => {
            assert!(error.to_string().contains(needle), "{needle}: {error}")
        }
        other => panic!("{needle}: expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn empty_shapes_and_shapes_past_32_bit_indexing_are_refused_before_running() {
    let gpu = gpu();
    let [ten, other, out, _] = ten_ten_ten_three(&gpu);
    let softmax = Activation::Softmax;

    // Empty shapes, and shapes past 32-bit indexing.
    for (rows, cols) in [(0, 5), (5, 0), (0, 0), (1 << 16, 1 << 16)] {
        let why = if rows * cols == 0 {
            "at least 1"
        } else {
            "below 2³²"
        };
        refused(
            Elementwise::Hadamard.bind(&gpu, "t", rows, cols, &ten, &other, &out),
            why,
        );
        refused(
            Update::Axpy(1.0).bind(&gpu, "t", rows, cols, &ten, &out),
            why,
        );
        refused(
            ActivationKernel::Forward(Activation::Relu)
                .bind(&gpu, "t", rows, cols, &ten, &other, &out),
            why,
        );
        refused(
            ActivationKernel::Backward(softmax).bind(&gpu, "t", rows, cols, &ten, &other, &out),
            why,
        );
        refused(ColumnSum::bind(&gpu, "t", rows, cols, &ten, &out), why);
        refused(Transpose::bind(&gpu, "t", rows, cols, &ten, &out), why);
    }
    refused(Sum::bind(&gpu, "t", 0, &ten, &out), "at least 1");
}

#[test]
fn buffers_shorter_than_the_shape_are_refused_before_running() {
    let gpu = gpu();
    let [ten, other, out, three] = ten_ten_ten_three(&gpu);
    let softmax = Activation::Softmax;

    // Buffers shorter than the shape: 3×4 = 12 values (48 bytes) in buffers of 10 or 3.
    refused(
        Elementwise::Hadamard.bind(&gpu, "t", 3, 4, &ten, &other, &out),
        "first holds 40 bytes but the shape needs 48",
    );
    refused(
        Elementwise::BiasAdd.bind(&gpu, "t", 2, 5, &ten, &three, &out),
        "second holds 12 bytes but the shape needs 20",
    );
    assert!(
        Elementwise::BiasAdd
            .bind(&gpu, "t", 3, 3, &ten, &three, &out)
            .is_ok(),
        "a bias of cols values is enough"
    );
    refused(
        Update::Scale(2.0).bind(&gpu, "t", 2, 5, &ten, &three),
        "y holds 12 bytes but the shape needs 40",
    );
    refused(
        ActivationKernel::Backward(Activation::Sigmoid).bind(&gpu, "t", 2, 5, &ten, &three, &out),
        "second holds 12 bytes",
    );
    assert!(
        ActivationKernel::Forward(softmax)
            .bind(&gpu, "t", 2, 5, &ten, &three, &out)
            .is_ok(),
        "forward never reads second"
    );
    refused(
        ColumnSum::bind(&gpu, "t", 2, 5, &ten, &three),
        "output holds 12 bytes but the shape needs 20",
    );
    refused(Sum::bind(&gpu, "t", 11, &ten, &out), "input holds 40 bytes");
    refused(Transpose::bind(&gpu, "t", 1, 11, &ten, &out), "input holds");
}

#[test]
fn an_output_bound_as_an_operand_is_refused_and_the_device_stays_usable() {
    let gpu = gpu();
    let [ten, _, out, _] = ten_ten_ten_three(&gpu);
    let softmax = Activation::Softmax;

    // One buffer as an input and the output: wgpu would fail only at submission, for good.
    refused(
        Elementwise::Axpy(1.0).bind(&gpu, "t", 2, 5, &ten, &out, &out),
        "bound both as an output and as another operand",
    );
    refused(
        ActivationKernel::Forward(softmax).bind(&gpu, "t", 2, 5, &ten, &ten, &ten),
        "bound both as an output and as another operand",
    );
    refused(
        Update::Axpy(1.0).bind(&gpu, "t", 2, 5, &ten, &ten),
        "bound both as an output and as another operand",
    );
    refused(
        ColumnSum::bind(&gpu, "t", 2, 5, &ten, &ten),
        "bound both as an output and as another operand",
    );
    refused(
        Sum::bind(&gpu, "t", 10, &ten, &ten),
        "bound both as an output and as another operand",
    );
    refused(
        Transpose::bind(&gpu, "t", 2, 5, &ten, &ten),
        "bound both as an output and as another operand",
    );

    // And the context still works.
    let dispatch = Update::Scale(2.0)
        .bind(&gpu, "after refusals", 2, 5, &ten, &out)
        .unwrap();
    assert_eq!(run_and_read(&gpu, &dispatch, &out, 10), vec![0.0; 10]);
}

#[test]
fn grids_past_the_per_dimension_limit_fold_into_two_dimensions() {
    let gpu = gpu();
    let config = KernelConfig {
        max_workgroups_per_dimension: 100,
        ..gpu.config().clone()
    };
    for items in [1, 99 * 256, 100 * 256, 100 * 256 + 1, 9999 * 256 + 3] {
        let [x, y, z] = config.grid_1d(items, 256);
        assert!(x <= 100 && y <= 100 && z == 1, "{items}: grid {x}×{y}");
        assert!(
            (x * y) as usize * 256 >= items,
            "{items}: grid {x}×{y} covers too few"
        );
    }
    // And on the device: more elements than one dimension of workgroups can cover.
    let limit =
        gpu.config().max_workgroups_per_dimension as usize * gpu.config().workgroup_size as usize;
    let (rows, cols) = (limit / 1000 + 7, 1000);
    assert!(rows * cols > limit);
    let a = Array2::from_shape_fn((rows, cols), |(r, c)| (r % 13) as f32 + c as f32 * 1e-3);
    let b = Array2::from_shape_fn((rows, cols), |(r, c)| ((r + c) % 5) as f32);
    let out = gpu.storage_buffer("out", rows * cols).unwrap();
    let dispatch = Elementwise::Hadamard
        .bind(
            &gpu,
            "folded hadamard",
            rows,
            cols,
            &upload(&a),
            &upload(&b),
            &out,
        )
        .unwrap();
    let want = &a * &b;
    assert_close(
        "folded hadamard",
        &run_and_read(&gpu, &dispatch, &out, rows * cols),
        want.as_slice().unwrap(),
        0.0,
        1e-7,
    );
}

/// Workgroups per dimension on [`few_workgroups_gpu`]: small enough that a few thousand
/// invocations need a folded grid.
const FEW_WORKGROUPS: u32 = 8;

/// The test adapter again, opened with at most [`FEW_WORKGROUPS`] workgroups per dimension.
fn few_workgroups_gpu() -> Gpu {
    let name = gpu().adapter_info().name.clone();
    Gpu::with_limits(AdapterChoice::Name(name), |limits| {
        limits.max_compute_workgroups_per_dimension = FEW_WORKGROUPS
    })
    .unwrap()
}

#[test]
fn every_one_dimensional_kernel_folds_its_grid_and_refuses_one_past_the_fold() {
    let gpu = few_workgroups_gpu();
    assert_eq!(gpu.config().max_workgroups_per_dimension, FEW_WORKGROUPS);
    let per_row = (FEW_WORKGROUPS * gpu.config().workgroup_size) as usize;
    // More invocations than one row of workgroups holds, fewer than the folded square.
    let (rows, cols) = (per_row + 37, 3);
    let m = random_matrix(rows, cols, 9);
    let n = random_matrix(rows, cols, 10);
    let (input, second) = (upload_to(&gpu, &m), upload_to(&gpu, &n));
    let out = gpu.storage_buffer("out", rows * cols).unwrap();

    let hadamard = Elementwise::Hadamard
        .bind(&gpu, "folded", rows, cols, &input, &second, &out)
        .unwrap();
    assert_close(
        "folded hadamard",
        &run_and_read(&gpu, &hadamard, &out, rows * cols),
        (&m * &n).as_slice().unwrap(),
        0.0,
        0.0,
    );
    // Softmax runs one invocation per row: `rows` alone needs the fold.
    let softmax = ActivationKernel::Forward(Activation::Softmax)
        .bind(&gpu, "folded", rows, cols, &input, &second, &out)
        .unwrap();
    assert_close(
        "folded softmax",
        &run_and_read(&gpu, &softmax, &out, rows * cols),
        softmax_rows(&m).as_slice().unwrap(),
        ELEMENTWISE_ATOL,
        ELEMENTWISE_RTOL,
    );
    let transpose = Transpose::bind(&gpu, "folded", rows, cols, &input, &out).unwrap();
    assert_close(
        "folded transpose",
        &run_and_read(&gpu, &transpose, &out, rows * cols),
        m.t().as_standard_layout().as_slice().unwrap(),
        0.0,
        0.0,
    );
    // Column sums size their grid by columns, and the split kernel GPUs get sums fewer columns
    // per workgroup: a matrix wider than one row of its workgroups needs the fold, with either.
    let split = common::gpu_with(|config| {
        config.split_column_sums = !gpu.config().split_column_sums;
        config.max_workgroups_per_dimension = FEW_WORKGROUPS;
    });
    for gpu in [&gpu, &split] {
        let wide_cols = (FEW_WORKGROUPS * ColumnSum::columns_per_workgroup(gpu)) as usize + 37;
        let wide = random_matrix(cols, wide_cols, 11);
        let (wide_input, sums) = (
            upload_to(gpu, &wide),
            gpu.storage_buffer("sums", wide_cols).unwrap(),
        );
        let column_sum =
            ColumnSum::bind(gpu, "folded", cols, wide_cols, &wide_input, &sums).unwrap();
        assert_close(
            "folded column sums",
            &run_and_read(gpu, &column_sum, &sums, wide_cols),
            wide.sum_axis(Axis(0)).as_slice().unwrap(),
            COLUMN_SUM_ATOL,
            COLUMN_SUM_RTOL,
        );
    }

    // Past FEW_WORKGROUPS² workgroups even the fold cannot cover: refused, not truncated.
    let past = per_row * FEW_WORKGROUPS as usize + 1;
    let big = gpu.storage_buffer("big", past).unwrap();
    let big_out = gpu.storage_buffer("big out", past).unwrap();
    let error = Update::Scale(1.0)
        .bind(&gpu, "past the fold", past, 1, &big, &big_out)
        .unwrap_err();
    assert!(
        matches!(error, Error::Invalid { .. }) && error.to_string().contains("per dimension"),
        "{error}"
    );
}
