#!/usr/bin/env python3
"""JAX (jit) and numpy training the `wgpu-mlp bench --cpu` workloads on the CPU: the baselines
BENCHMARKS.md puts beside `wgpu-mlp bench --cpu` on the same cores, each when installed.

    python3 scripts/cpu_baselines.py [--workload NAME]... [--batch N] [--samples N] [--json]

    python3 -m venv /tmp/venv-bench && /tmp/venv-bench/bin/pip install jax numpy

Workloads, as `wgpu-mlp bench --cpu --workload W1|W2 [--batch N] [--hidden-sizes ...]` runs them:
W1 784-128-10 sigmoid/sigmoid MSE, SGD 0.5; W2 784-1024-1024-10 ReLU/softmax cross-entropy, SGD
0.05; and `wide` 784-1000-500-10 as W2. `--batch` replaces every workload's batch (W1 64, W2 and
wide 256 by default). The step is ours: MNIST-shaped bytes scaled to [0, 1] each step, forward,
the mean loss, backward, plain SGD, all in f32. Each framework runs one step first (JAX compiles
it), then times at least `--samples` samples; the best of `--repeats` runs is printed.
"""

import argparse
import json
import time

WORKLOADS = {
    # name: (sizes, hidden activation, loss, batch, learning rate)
    "W1": ([784, 128, 10], "sigmoid", "mse", 64, 0.5),
    "W2": ([784, 1024, 1024, 10], "relu", "cross_entropy", 256, 0.05),
    "wide": ([784, 1000, 500, 10], "relu", "cross_entropy", 256, 0.05),
}


def flops_per_sample(sizes):
    """As `wgpu_mlp::bench::flops_per_sample`: forward and dW one multiply-add per weight, and
    δ_prev one per weight of every layer but the first."""
    weights = [i * o for i, o in zip(sizes, sizes[1:])]
    return sum(2 * w * (2 if l == 0 else 3) for l, w in enumerate(weights))


def data(batch, batches, seed=7):
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batches * batch, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, batches * batch)
    return images, np.eye(10, dtype=np.float32)[labels]


def init(sizes, seed=1):
    import numpy as np

    rng = np.random.default_rng(seed)
    params = []
    for i, o in zip(sizes, sizes[1:]):
        limit = 1.0 / np.sqrt(i)
        params.append(
            (
                rng.uniform(-limit, limit, (o, i)).astype(np.float32),
                rng.uniform(-limit, limit, o).astype(np.float32),
            )
        )
    return params


def time_steps(step, batch, samples, repeats):
    """Runs `step(i)` once, then the best samples/s of `repeats` timings of enough steps."""
    step(0)
    steps = max(1, -(-samples // batch))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            step(i)
        best = max(best, steps * batch / (time.perf_counter() - start))
    return best


def jax_rate(name, batch, samples, repeats):
    import jax
    import jax.numpy as jnp

    sizes, hidden, loss_name, _, lr = WORKLOADS[name]
    images, targets = data(batch, 64)
    images, targets = jnp.asarray(images), jnp.asarray(targets)
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in init(sizes)]
    act = jax.nn.sigmoid if hidden == "sigmoid" else jax.nn.relu

    def loss(params, x, y):
        for w, b in params[:-1]:
            x = act(x @ w.T + b)
        w, b = params[-1]
        z = x @ w.T + b
        if loss_name == "mse":
            return jnp.mean((jax.nn.sigmoid(z) - y) ** 2)
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(z), axis=1))

    @jax.jit
    def train_step(params, x, y):
        grads = jax.grad(loss)(params, x.astype(jnp.float32) / 255.0, y)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    state = {"params": params}

    def step(i):
        lo = (i % 64) * batch
        state["params"] = train_step(state["params"], images[lo : lo + batch], targets[lo : lo + batch])
        jax.block_until_ready(state["params"])

    return time_steps(step, batch, samples, repeats)


def numpy_rate(name, batch, samples, repeats):
    import numpy as np

    sizes, hidden, loss_name, _, lr = WORKLOADS[name]
    images, targets = data(batch, 64)
    params = init(sizes)

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    def step(i):
        lo = (i % 64) * batch
        x = images[lo : lo + batch].astype(np.float32) / np.float32(255.0)
        y = targets[lo : lo + batch]
        activations = [x]
        for w, b in params[:-1]:
            z = activations[-1] @ w.T + b
            activations.append(sigmoid(z) if hidden == "sigmoid" else np.maximum(z, 0))
        w, b = params[-1]
        z = activations[-1] @ w.T + b
        if loss_name == "mse":
            a = sigmoid(z)
            delta = 2 * (a - y) / np.float32(a.size) * a * (1 - a)
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            delta = (e / e.sum(axis=1, keepdims=True) - y) / np.float32(batch)
        for layer in range(len(params) - 1, -1, -1):
            w, b = params[layer]
            a = activations[layer]
            dw, db = delta.T @ a, delta.sum(axis=0)
            if layer > 0:
                derivative = a * (1 - a) if hidden == "sigmoid" else (a > 0)
                delta = (delta @ w) * derivative
            params[layer] = (w - np.float32(lr) * dw, b - np.float32(lr) * db)

    return time_steps(step, batch, samples, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    parser.add_argument("--batch", type=int, help="samples per step instead of each workload's")
    parser.add_argument("--samples", type=int, default=12_800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    frameworks = []
    for label, module, rate in [("jax", "jax", jax_rate), ("numpy", "numpy", numpy_rate)]:
        try:
            __import__(module)
            frameworks.append((label, rate))
        except ImportError:
            print(f"{label}: not installed, skipped")
    for name in args.workload or ["W1", "W2", "wide"]:
        sizes = WORKLOADS[name][0]
        batch = args.batch or WORKLOADS[name][3]
        for label, rate in frameworks:
            samples_per_s = rate(name, batch, args.samples, args.repeats)
            gflops = samples_per_s * flops_per_sample(sizes) / 1e9
            if args.json:
                print(json.dumps({"framework": label, "workload": name, "sizes": sizes, "batch": batch,
                                  "samples_per_s": samples_per_s, "gflops": gflops}))
            else:
                shape = "-".join(map(str, sizes))
                print(f"{label} {name} ({shape}, batch {batch}): {samples_per_s:,.0f} samples/s, {gflops:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
