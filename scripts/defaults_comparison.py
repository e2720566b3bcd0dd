#!/usr/bin/env python3
"""A newcomer's own data with only the defaults: wgpu-mlp before and after, beside scikit-learn.

1. Makes three CSV sets with scikit-learn (header x1..xN, y; target last), each split 80/20
   into DIR/NAME/train.csv and DIR/NAME/test.csv by train_test_split(random_state=0):
   - classify4:  make_classification(5000 samples, 20 features, 10 informative, 4 classes,
                 random_state=0);
   - classify20: make_classification(10000 samples, 20 features, 12 informative, 20 classes,
                 1 cluster per class, random_state=0);
   - friedman1:  make_friedman1(5000 samples, 10 features, noise 1.0, random_state=0)
                 (regression; the noise floor is RMSE 1).

2. Trains `BIN train --train DIR/NAME/train.csv --test DIR/NAME/test.csv --json [--cpu]` with
   nothing else, for each BIN given (e.g. the binary before the change and after it), and
   scikit-learn's default MLPClassifier / MLPRegressor (random_state=0) on the same split after
   a StandardScaler fitted on the training rows (wgpu-mlp standardizes float features and
   regression targets by default). Prints a Markdown table of test accuracy or R^2.

3. With --predict-check: for each classification set, saves the last BIN's model, runs
   `BIN predict --model M DIR/NAME/test.csv --output P.csv` and reports the largest
   |sum of a row's probabilities - 1|.

4. With --sweep BIN: trains BIN with --epochs 200 --metrics for each --batch in 32, 64, 128 and
   prints the test score after epochs 10, 20, 40, 80 and 200, and the best epoch's (how the
   default epochs and batch were chosen).

Usage:
  defaults_comparison.py --out DIR --bin NAME=PATH [--bin NAME=PATH ...] [--cpu]
                         [--predict-check] [--sweep PATH]
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
from sklearn.datasets import make_classification, make_friedman1
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

SETS = ["classify4", "classify20", "friedman1"]


def make(name):
    if name == "classify4":
        x, y = make_classification(n_samples=5000, n_features=20, n_informative=10,
                                   n_classes=4, random_state=0)
    elif name == "classify20":
        x, y = make_classification(n_samples=10000, n_features=20, n_informative=12,
                                   n_classes=20, n_clusters_per_class=1, random_state=0)
    else:
        x, y = make_friedman1(n_samples=5000, n_features=10, noise=1.0, random_state=0)
    return train_test_split(x, y, test_size=0.2, random_state=0)


def write_csv(path, x, y, classes):
    header = ",".join([f"x{j + 1}" for j in range(x.shape[1])] + ["y"])
    with open(path, "w") as f:
        f.write(header + "\n")
        for row, target in zip(x, y):
            last = str(int(target)) if classes else repr(float(target))
            f.write(",".join(repr(float(v)) for v in row) + "," + last + "\n")


def is_classification(name):
    return name != "friedman1"


def wgpu_mlp(binary, train, test, cpu, extra=()):
    command = [binary, "train", "--train", train, "--test", test, "--json", *extra]
    if cpu:
        command.append("--cpu")
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        lines = run.stderr.strip().splitlines()
        return None, lines[-1].split(":")[1].strip() if lines else "failed"
    return json.loads(run.stdout.strip().splitlines()[-1]), None


def score(summary, name):
    return summary["test_accuracy"] if is_classification(name) else summary["test_r2"]


def sklearn_score(name, split):
    x_train, x_test, y_train, y_test = split
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    if is_classification(name):
        model = MLPClassifier(random_state=0).fit(x_train, y_train)
        return model.score(x_test, y_test)
    y_scaler = StandardScaler().fit(y_train[:, None])
    model = MLPRegressor(random_state=0).fit(x_train, y_scaler.transform(y_train[:, None]).ravel())
    predictions = y_scaler.inverse_transform(model.predict(x_test)[:, None]).ravel()
    return 1 - ((predictions - y_test) ** 2).sum() / ((y_test - y_test.mean()) ** 2).sum()


def shown(value, name):
    if value is None:
        return "—"
    return f"{value * 100:.1f}%" if is_classification(name) else f"R² {value:.3f}"


def predict_check(binary, out, name, cpu):
    folder = os.path.join(out, name)
    model = os.path.join(folder, "model.safetensors")
    train, test = os.path.join(folder, "train.csv"), os.path.join(folder, "test.csv")
    _, error = wgpu_mlp(binary, train, test, cpu, ["--save", model])
    if error:
        return error
    predictions = os.path.join(folder, "predictions.csv")
    subprocess.run([binary, "predict", "--model", model, test, "--output", predictions],
                   check=True, capture_output=True)
    with open(predictions) as f:
        header = f.readline().strip().split(",")
        rows = np.array([[float(v) for v in line.split(",")] for line in f if line.strip()])
    columns = [j for j, h in enumerate(header) if h.startswith("p")]
    sums = rows[:, columns].sum(axis=1)
    return f"{len(columns)} probability columns, max |row sum − 1| = {np.abs(sums - 1).max():.2e}"


def sweep(binary, out, name, cpu):
    folder = os.path.join(out, name)
    rows = []
    for batch in [32, 64, 128]:
        metrics = os.path.join(folder, f"metrics-{batch}.jsonl")
        _, error = wgpu_mlp(binary, os.path.join(folder, "train.csv"),
                            os.path.join(folder, "test.csv"), cpu,
                            ["--epochs", "200", "--batch", str(batch), "--metrics", metrics])
        if error:
            rows.append(f"| {name} | {batch} | {error} |")
            continue
        with open(metrics) as f:
            epochs = [json.loads(line) for line in f]
        key = "test_accuracy" if is_classification(name) else "test_r2"
        cells = [shown(epochs[e - 1][key], name) for e in [10, 20, 40, 80, 200]]
        best = max(epochs, key=lambda epoch: epoch[key])
        cells.append(f"{shown(best[key], name)} ({best['epoch']})")
        rows.append(f"| {name} | {batch} | " + " | ".join(cells) + " |")
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--bin", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--predict-check", action="store_true")
    parser.add_argument("--sweep", metavar="PATH")
    args = parser.parse_args()
    binaries = [b.split("=", 1) for b in args.bin]
    print("| set | " + " | ".join(n for n, _ in binaries) + " | scikit-learn |")
    print("|---|" + "---|" * (len(binaries) + 1))
    for name in SETS:
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        split = make(name)
        x_train, x_test, y_train, y_test = split
        train, test = os.path.join(folder, "train.csv"), os.path.join(folder, "test.csv")
        write_csv(train, x_train, y_train, is_classification(name))
        write_csv(test, x_test, y_test, is_classification(name))
        cells = []
        for _, binary in binaries:
            summary, error = wgpu_mlp(binary, train, test, args.cpu)
            cells.append(error if error else
                         f"{shown(score(summary, name), name)} ({summary['epochs']} epochs)")
        cells.append(shown(sklearn_score(name, split), name))
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    if args.predict_check and binaries:
        for name in filter(is_classification, SETS):
            print(f"{name}: {predict_check(binaries[-1][1], args.out, name, args.cpu)}")
    if args.sweep:
        print("\n| set | batch | epoch 10 | epoch 20 | epoch 40 | epoch 80 | epoch 200 | best (epoch) |")
        print("|---|---|---|---|---|---|---|---|")
        for name in SETS:
            print("\n".join(sweep(args.sweep, args.out, name, args.cpu)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
