"""What the tests share: the CLI binary, small data sets, and a numpy forward pass written
anew from the model's definition (the independent reference)."""

import math
import os
import pathlib
import subprocess

import numpy as np
import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cli():
    """Runs ``wgpu-mlp`` (``$WGPU_MLP_BIN``, else the release build of this checkout) and
    returns its standard output; a failure shows its standard error."""
    binary = os.environ.get("WGPU_MLP_BIN", str(REPOSITORY / "target/release/wgpu-mlp"))
    if not os.path.exists(binary):
        pytest.fail(f"{binary} is missing: build it with `cargo build --release` first")

    def run(*args):
        done = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, f"wgpu-mlp {' '.join(map(str, args))}: {done.stderr}"
        return done.stdout

    return run


def blobs(n=240, features=5, classes=3, seed=0):
    """Separable-ish Gaussian classes: float32 features and int labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.5, (classes, features))
    y = rng.integers(0, classes, n)
    x = centres[y] + rng.normal(0, 1, (n, features))
    return x.astype(np.float32), y.astype(np.int64)


def forward(coefs, intercepts, x, hidden):
    """The network's outputs before its output activation, from scikit-learn's [in, out]
    layout: a = g(a·W + b) layer by layer, the last layer linear."""
    g = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
         "logistic": lambda z: 1 / (1 + np.exp(-z)), "identity": lambda z: z,
         "gelu": lambda z: 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2))),
         "silu": lambda z: z / (1 + np.exp(-z)),
         "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z)}[hidden]
    a = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(zip(coefs, intercepts)):
        a = a @ w.astype(np.float64) + b
        if i < len(coefs) - 1:
            a = g(a)
    return a


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
