#!/usr/bin/env python3
"""CSV regression with features of very different scales, and a numpy reference MLP.

1. Generates a deterministic data set (seed 15) of 6,000 rows: 8 features
   u_j ~ U(0, 1) stored as x_j = offset_j + scale_j * u_j, with scales
   1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4 (offsets 0 except x_8: 5e4,
   so one column is also far from zero), and the Friedman #1 target of the
   scaled-back features:

       y = 10 sin(pi u1 u2) + 20 (u3 - 0.5)^2 + 10 u4 + 5 u5 + N(0, 1)

   (u6..u8 are irrelevant). Written with a header row (x1..x8, y; target
   last) as OUT/train.csv (first 5,000 rows) and OUT/test.csv (last 1,000).
   The noise floor is RMSE 1 (R^2 about 0.96 on this target).

2. Trains the same network as the CLI run in pure numpy (float64):
   8 -> H... -> 1, tanh (or relu) hidden layers, identity output, MSE
   (mean over the batch), Adam (beta 0.9, 0.999, eps 1e-8), batch 64
   (last partial batch kept), reshuffled every epoch, Xavier-uniform
   weights for tanh (He-uniform for relu) and zero biases. Features are
   standardized with the training set's mean and standard deviation, and
   so is the target (predictions are scaled back). Prints test RMSE and R^2
   in the target's units.

3. With --check-preds FILE: reads the predictions `wgpu-mlp predict ...
   --output FILE` wrote for OUT/test.csv and prints their RMSE and R^2
   against test.csv's y.

Usage:
  regression_reference.py [--out DIR] [--epochs N] [--hidden-sizes 64,64]
                          [--hidden tanh|relu] [--normalize standard|none]
                          [--check-preds FILE]
"""

import argparse
import json
import os

import numpy as np

SEED = 15
SCALES = np.array([1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4])
OFFSETS = np.array([0, 0, 0, 0, 0, 0, 0, 5e4])
N_TRAIN, N_TEST = 5000, 1000


def generate(out):
    rng = np.random.default_rng(SEED)
    n = N_TRAIN + N_TEST
    u = rng.random((n, 8))
    y = (
        10 * np.sin(np.pi * u[:, 0] * u[:, 1])
        + 20 * (u[:, 2] - 0.5) ** 2
        + 10 * u[:, 3]
        + 5 * u[:, 4]
        + rng.normal(0.0, 1.0, n)
    )
    x = OFFSETS + SCALES * u
    os.makedirs(out, exist_ok=True)
    header = ",".join([f"x{j + 1}" for j in range(8)] + ["y"])
    data = np.column_stack([x, y])
    for name, rows in (("train.csv", data[:N_TRAIN]), ("test.csv", data[N_TRAIN:])):
        np.savetxt(os.path.join(out, name), rows, delimiter=",", header=header,
                   comments="", fmt="%.10g")


def load(path):
    d = np.loadtxt(path, delimiter=",", skiprows=1)
    return d[:, :-1], d[:, -1]


def metrics(pred, y):
    rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
    r2 = float(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))
    return rmse, r2


def train(xtr, ytr, sizes, hidden, epochs, lr, batch, seed):
    rng = np.random.default_rng(seed)
    W, b = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        relu_layer = hidden == "relu" and len(W) < len(sizes) - 2
        limit = np.sqrt(6 / fan_in) if relu_layer else np.sqrt(6 / (fan_in + fan_out))
        W.append(rng.uniform(-limit, limit, (fan_in, fan_out)))
        b.append(np.zeros(fan_out))
    params = W + b
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    act = np.tanh if hidden == "tanh" else (lambda z: np.maximum(z, 0))
    dact = (lambda a: 1 - a * a) if hidden == "tanh" else (lambda a: (a > 0).astype(a.dtype))
    t = 0
    n = len(xtr)
    L = len(W)
    for _ in range(epochs):
        perm = rng.permutation(n)
        for s in range(0, n, batch):
            idx = perm[s : s + batch]
            a = [xtr[idx]]
            for l in range(L):
                z = a[-1] @ W[l] + b[l]
                a.append(z if l == L - 1 else act(z))
            target = ytr[idx].reshape(-1, 1)
            g = 2 * (a[-1] - target) / len(idx)  # d mean((a-y)^2) / da, one output
            gW, gb = [None] * L, [None] * L
            for l in reversed(range(L)):
                gW[l] = a[l].T @ g
                gb[l] = g.sum(axis=0)
                if l > 0:
                    g = (g @ W[l].T) * dact(a[l])
            t += 1
            for i, (p, gp) in enumerate(zip(params, gW + gb)):
                m[i] = b1 * m[i] + (1 - b1) * gp
                v[i] = b2 * v[i] + (1 - b2) * gp * gp
                mh = m[i] / (1 - b1**t)
                vh = v[i] / (1 - b2**t)
                p -= lr * mh / (np.sqrt(vh) + eps)

    def predict(x):
        h = x
        for l in range(L):
            h = h @ W[l] + b[l]
            if l < L - 1:
                h = act(h)
        return h[:, 0]

    return predict


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/measure/regression")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--hidden-sizes", default="64,64")
    ap.add_argument("--hidden", default="tanh", choices=["tanh", "relu"])
    ap.add_argument("--normalize", default="standard", choices=["standard", "none"])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--check-preds", metavar="FILE")
    args = ap.parse_args()

    if args.check_preds:
        _, yte = load(os.path.join(args.out, "test.csv"))
        with open(args.check_preds) as f:
            first = f.readline()
        has_header = any(c.isalpha() for c in first.replace("e-", "").replace("e+", ""))
        pred = np.loadtxt(args.check_preds, delimiter=",", skiprows=1 if has_header else 0, ndmin=2)
        pred = pred[:, -1]
        if len(pred) != len(yte):
            raise SystemExit(f"{len(pred)} predictions for {len(yte)} test rows")
        rmse, r2 = metrics(pred, yte)
        print(json.dumps({"file": args.check_preds, "rows": len(pred), "header": first.strip()[:80],
                          "rmse": rmse, "r2": r2}))
        return

    generate(args.out)
    xtr, ytr = load(os.path.join(args.out, "train.csv"))
    xte, yte = load(os.path.join(args.out, "test.csv"))
    if args.normalize == "standard":
        mx, sx = xtr.mean(axis=0), xtr.std(axis=0)
        my, sy = ytr.mean(), ytr.std()
    else:
        mx, sx, my, sy = 0.0, 1.0, 0.0, 1.0
    sizes = [8] + [int(s) for s in args.hidden_sizes.split(",")] + [1]
    predict = train((xtr - mx) / sx, (ytr - my) / sy, sizes, args.hidden, args.epochs,
                    args.lr, args.batch, args.seed)
    with np.errstate(all="ignore"):
        pred = predict((xte - mx) / sx) * sy + my
        rmse, r2 = metrics(pred, yte)
        base_rmse, _ = metrics(np.full_like(yte, ytr.mean()), yte)
    print(json.dumps({
        "library": f"numpy {np.__version__}", "layers": sizes, "hidden": args.hidden,
        "normalize": args.normalize, "epochs": args.epochs, "lr": args.lr, "batch": args.batch,
        "test_rmse": rmse, "test_r2": r2, "test_rmse_of_train_mean": base_rmse,
    }))


if __name__ == "__main__":
    main()
