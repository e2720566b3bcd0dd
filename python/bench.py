"""MNIST (60,000 training images) with a 784-512-256-10 MLP: wgpu_mlp's MLPClassifier on an
adapter and on its CPU reference, beside scikit-learn's MLPClassifier with the same settings
and PyTorch on the CPU if it is installed. Prints one line per trainer (fit seconds, test
accuracy) and a markdown table for BENCHMARKS.md.

    python python/bench.py DIR [--epochs N] [--device software] [--only ours-gpu,ours-cpu,...]

DIR holds the four MNIST IDX files (train-images-idx3-ubyte[.gz], …). Every trainer gets the
same network (ReLU, softmax output, cross-entropy), Adam at 1e-3, batches of 200 (scikit-learn's
'auto'), alpha 1e-4 (scikit-learn's L2), N epochs with no early stopping, and pixels ÷255.
"""

import argparse
import gzip
import os
import platform
import time
import warnings

import numpy as np


def read_idx(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as file:
                data = file.read()
            dims = data[3]
            shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
            return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)
    raise SystemExit(f"{directory}: no {name}[.gz]")


def load(directory):
    x_train = read_idx(directory, "train-images-idx3-ubyte").reshape(60000, 784)
    y_train = read_idx(directory, "train-labels-idx1-ubyte")
    x_test = read_idx(directory, "t10k-images-idx3-ubyte").reshape(-1, 784)
    y_test = read_idx(directory, "t10k-labels-idx1-ubyte")
    return x_train, y_train, x_test, y_test


def settings(epochs):
    return dict(hidden_layer_sizes=(512, 256), solver="adam", learning_rate_init=1e-3,
                batch_size=200, alpha=1e-4, max_iter=epochs, n_iter_no_change=epochs + 1,
                random_state=0)


def ours(device):
    def fit_and_score(x, y, x_test, y_test, epochs):
        from wgpu_mlp import MLPClassifier

        # uint8 pixels: the library divides them by 255 inside the model.
        clf = MLPClassifier(device=device, **settings(epochs))
        start = time.perf_counter()
        clf.fit(x, y)
        return time.perf_counter() - start, clf.score(x_test, y_test)

    return fit_and_score


def scikit_learn(x, y, x_test, y_test, epochs):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(**settings(epochs))
    x = x.astype(np.float32) / 255
    start = time.perf_counter()
    clf.fit(x, y)
    seconds = time.perf_counter() - start
    return seconds, clf.score(x_test.astype(np.float32) / 255, y_test)


def pytorch(x, y, x_test, y_test, epochs):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    # scikit-learn's alpha/(2·batch)·‖W‖² is an L2 weight decay of alpha/batch.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4 / 200)
    xs = torch.from_numpy(x.astype(np.float32) / 255)
    ys = torch.from_numpy(y.astype(np.int64))
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(xs))
        for i in range(0, len(xs), 200):
            batch = order[i:i + 200]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xs[batch]), ys[batch])
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_test.astype(np.float32) / 255)).argmax(1).numpy()
    return seconds, float(np.mean(predicted == y_test))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder of the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--device", default="software", help="wgpu_mlp's adapter")
    parser.add_argument("--only", default="ours-gpu,ours-cpu,scikit-learn,pytorch")
    args = parser.parse_args()
    x, y, x_test, y_test = load(args.data)
    import wgpu_mlp

    trainers = {
        "ours-gpu": (f"wgpu_mlp MLPClassifier, device={args.device!r}", ours(args.device)),
        "ours-cpu": ("wgpu_mlp MLPClassifier, device='cpu'", ours("cpu")),
        "scikit-learn": ("scikit-learn MLPClassifier", scikit_learn),
        "pytorch": ("PyTorch, CPU, eager loop", pytorch),
    }
    print(f"MNIST 60,000 × 784 → 512 → 256 → 10, {args.epochs} epochs, Adam 1e-3, batch 200; "
          f"{platform.machine()}, {os.cpu_count()} CPUs; adapters: {wgpu_mlp.adapters()}")
    rows = []
    for key in args.only.split(","):
        name, run = trainers[key]
        if key == "pytorch":
            try:
                import torch  # noqa: F401
            except ImportError:
                print(f"{name}: not installed, skipped")
                continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, accuracy = run(x, y, x_test, y_test, args.epochs)
        print(f"{name}: fit {seconds:.1f} s, test accuracy {accuracy:.2%}", flush=True)
        rows.append(f"| {name} | {seconds:.1f} | {60000 * args.epochs / seconds:,.0f} | "
                    f"{accuracy:.2%} |")
    print("\n| trainer | fit s | samples/s | test accuracy |\n| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
