//! Every kernel against ndarray, at sizes that are and are not multiples of the workgroup tile:
//! one module per kernel family, the expected values written anew in [`expected`].

#[path = "../common/mod.rs"]
mod common;

mod activation;
mod elementwise;
mod expected;
mod matmul;
mod matmul_refusals;
mod random;
mod reduce;
mod shapes;
mod transpose;

use common::gpu;
use wgpu_mlp::Gpu;
use wgpu_mlp::gpu::kernels::Dispatch;
use wgpu_mlp::ndarray::Array2;

/// Sizes the issue names: 1, around the 64-wide tile, and not multiples of anything.
const SIZES: [usize; 8] = [1, 3, 7, 63, 64, 65, 257, 1000];

/// Element-wise results differ from ndarray only in the last bits of exp and tanh.
const ELEMENTWISE_ATOL: f32 = 1e-6;
const ELEMENTWISE_RTOL: f32 = 1e-5;
/// Column sums of up to 1000 values in [-1, 1), added in blocks rather than ndarray's order.
const COLUMN_SUM_ATOL: f32 = 1e-4;
const COLUMN_SUM_RTOL: f32 = 1e-5;

/// (rows, cols) pairs: every listed size as rows and as columns, against a non-square partner.
fn shapes() -> Vec<(usize, usize)> {
    let mut shapes = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        shapes.push((size, SIZES[(i + 3) % SIZES.len()]));
        shapes.push((SIZES[(i + 5) % SIZES.len()].min(257), size));
    }
    shapes
}

fn upload_to(gpu: &Gpu, values: &Array2<f32>) -> wgpu::Buffer {
    gpu.storage_buffer_with(
        "test input",
        values.as_standard_layout().as_slice().unwrap(),
    )
    .unwrap()
}

fn upload(values: &Array2<f32>) -> wgpu::Buffer {
    upload_to(&gpu(), values)
}

/// A buffer of `capacity` values whose first ones are `values` (to test reshaping down).
fn upload_with_capacity(values: &Array2<f32>, capacity: usize) -> wgpu::Buffer {
    let gpu = gpu();
    let buffer = gpu.storage_buffer("test input", capacity).unwrap();
    let data = values.as_standard_layout();
    gpu.queue()
        .write_buffer(&buffer, 0, bytemuck::cast_slice(data.as_slice().unwrap()));
    buffer
}

/// Runs `dispatch` on `gpu` and reads back `len` values of `out`.
fn run_and_read(gpu: &Gpu, dispatch: &Dispatch, out: &wgpu::Buffer, len: usize) -> Vec<f32> {
    Dispatch::run_all(gpu, &[dispatch]).unwrap();
    gpu.read_f32(out, len).unwrap()
}
