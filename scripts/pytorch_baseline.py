#!/usr/bin/env python3
"""PyTorch's CUDA FP32 eager training of the `wgpu-mlp bench` workloads, and cuBLAS's FP32
matmul at the shapes `cargo bench --bench kernels` measures: the baseline BENCHMARKS.md puts
beside wgpu-mlp's figures on the same GPU.

    python3 scripts/pytorch_baseline.py [--workload W1|W2]... [--samples N] [--matmul] [--json]

The training step is the one `wgpu-mlp bench` runs: MNIST-shaped bytes kept on the GPU,
scaled to [0, 1] each step, forward, loss reduced by the mean, backward, plain SGD. TF32 is
off, so every product is true FP32 like ours. Time is read after `torch.cuda.synchronize()`.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

WORKLOADS = {
    # name: (sizes, hidden activation, output, loss, batch, lr)
    "W1": ([784, 128, 10], "sigmoid", "sigmoid", "mse", 64, 0.5),
    "W2": ([784, 1024, 1024, 10], "relu", "softmax", "cross_entropy", 256, 0.05),
}

# (m, k, n) as in benches/kernels.rs, each in the three layouts backprop uses.
MATMUL_SHAPES = [
    (256, 784, 1024),
    (256, 1024, 1024),
    (1024, 256, 1024),
    (256, 1024, 10),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (4096, 4096, 4096),
]


def train_benchmark(name, samples, device):
    sizes, hidden, output, loss_name, batch, lr = WORKLOADS[name]
    torch.manual_seed(7)
    layers = [torch.nn.Linear(i, o).to(device) for i, o in zip(sizes, sizes[1:])]
    params = [p for layer in layers for p in layer.parameters()]
    optimizer = torch.optim.SGD(params, lr=lr)
    batches = 64
    images = torch.randint(0, 256, (batches * batch, 784), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (batches * batch,), device=device)
    one_hot = F.one_hot(labels, 10).float()

    def step(i):
        lo = (i % batches) * batch
        x = images[lo : lo + batch].float() / 255.0
        for layer in layers[:-1]:
            x = layer(x)
            x = torch.sigmoid(x) if hidden == "sigmoid" else torch.relu(x)
        z = layers[-1](x)
        if loss_name == "mse":
            loss = F.mse_loss(torch.sigmoid(z), one_hot[lo : lo + batch])
        else:
            loss = F.cross_entropy(z, labels[lo : lo + batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    steps = -(-samples // batch)
    for i in range(max(steps // 10, 2)):
        step(i)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    # As wgpu-mlp's flops_per_sample: forward, dW and δ_prev per weight; the first layer has no δ_prev.
    flops = sum(2 * i * o * (2 if l == 0 else 3) for l, (i, o) in enumerate(zip(sizes, sizes[1:])))
    rate = steps * batch / seconds
    return {
        "workload": name,
        "adapter": torch.cuda.get_device_name(device) + " (PyTorch " + torch.__version__ + " eager, FP32)",
        "samples": steps * batch,
        "seconds": seconds,
        "samples_per_s": rate,
        "gflops": rate * flops / 1e9,
    }


def matmul_benchmark(m, n, k, layout, device):
    a = torch.randn((k, m) if layout == "tn" else (m, k), device=device)
    b = torch.randn((n, k) if layout == "nt" else (k, n), device=device)
    op_a = a.t() if layout == "tn" else a
    op_b = b.t() if layout == "nt" else b
    for _ in range(3):
        torch.matmul(op_a, op_b)
    runs = max(10, int(2e11 / (2 * m * n * k)))
    start_event = torch.cuda.Event(enable_timing=True)
    end_event = torch.cuda.Event(enable_timing=True)
    start_event.record()
    for _ in range(runs):
        torch.matmul(op_a, op_b)
    end_event.record()
    torch.cuda.synchronize()
    seconds = start_event.elapsed_time(end_event) / 1e3 / runs
    return {"shape": f"{m}x{n}x{k} {layout}", "gflops": 2 * m * n * k / seconds / 1e9}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    parser.add_argument("--samples", type=int, default=51200)
    parser.add_argument("--matmul", action="store_true", help="also time cuBLAS FP32 matmul")
    parser.add_argument("--json", action="store_true", help="one JSON line per result")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this baseline is for a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device("cuda")
    for name in args.workload or ["W1", "W2"]:
        result = train_benchmark(name, args.samples, device)
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{name}: {result['samples_per_s']:,.0f} samples/s, "
                  f"{result['gflops']:,.1f} GFLOP/s on {result['adapter']}")
    if args.matmul:
        for (m, k, n), layout in [(shape, l) for shape in MATMUL_SHAPES for l in ("nn", "nt", "tn")]:
            result = matmul_benchmark(m, n, k, layout, device)
            if args.json:
                print(json.dumps(result))
            else:
                print(f"matmul {result['shape']:>18}: {result['gflops']:9,.0f} GFLOP/s")


if __name__ == "__main__":
    main()
