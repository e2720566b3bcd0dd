#!/usr/bin/env python3
"""Build an EMNIST-Balanced-like set of 47 classes from MNIST and Fashion-MNIST.

EMNIST is not available offline, so this script makes a stand-in of the same
shape: 47 balanced classes of 28x28 grey-level (uint8) images, by default
2,400 training and 400 test images per class, as in EMNIST Balanced
(112,800 / 18,800 in all). numpy only; deterministic (seed 47).

Classes (label: source class, transform; rotations are np.rot90, i.e.
counter-clockwise):

*  0- 9  MNIST digits 0-9, upright
* 10-19  Fashion-MNIST classes 0-9 (T-shirt/top, trouser, pullover, dress,
         coat, sandal, shirt, sneaker, bag, ankle boot), upright
* 20-29  MNIST digits 0-9 rotated 90 degrees
* 30-39  Fashion-MNIST classes 0-9 rotated 90 degrees
* 40-44  MNIST digits 2, 3, 4, 5, 7 rotated 180 degrees
* 45-46  Fashion-MNIST sandal (5) and sneaker (7) rotated 180 degrees

The 180-degree classes are the ones whose rotated form differs from the
upright one (0, 1 and 8 look alike upside down and 6/9 turn into each other;
most clothes are symmetric enough to be confused with their upright form).

Sampling. Training images come from the MNIST / Fashion-MNIST training files
only and test images from their test files only, so no source image is in
both splits. Each source class (e.g. MNIST digit 2) is shuffled once (seeded)
and its uses (upright, rot90, rot180, in that order) take consecutive blocks
of that order: classes of a source class used twice get disjoint source
images. A source class used three times (MNIST 2, 3, 4, 5, 7; Fashion 5, 7)
needs 3 x 2,400 = 7,200 training and 1,200 test images, more than the
originals hold (MNIST digit 5: 5,421 / 892; a Fashion class: 6,000 / 1,000),
so the 180-degree block wraps around to the start of the order: the
shortfall is taken from images that are also in the upright class, now
rotated 180 degrees. No image appears twice in one class, and no pixel array
appears twice in a split. The script prints how many such shared source
images each split has. `--per-class 1800,290` gives a set with no shared
source image at all (the largest balanced one: digit 5 has 5,421 / 892).

Output in OUT_DIR:

* emnist-style-balanced-train-images-idx3-ubyte.gz, emnist-style-balanced-train-labels-idx1-ubyte.gz
* emnist-style-balanced-test-images-idx3-ubyte.gz,  emnist-style-balanced-test-labels-idx1-ubyte.gz
* emnist-style-train.npz, emnist-style-test.npz (np.savez: x uint8 (N, 28, 28), y int64 (N,))

Both splits are shuffled (seeded); the IDX and NPZ files hold the same
samples in the same order.

Usage: make_emnist_style.py OUT_DIR [--data DIR] [--per-class TRAIN,TEST]
  DIR holds mnist/ and fashion-mnist/ with the original IDX .gz files
  (default: /work/shared/data, i.e. ../shared/data from the project root).
"""

import argparse
import gzip
import os
import struct
import sys

import numpy as np

SEED = 47

# (source, source class, rotation k for np.rot90) for labels 0..46, in order.
CLASSES = (
    [("mnist", d, 0) for d in range(10)]
    + [("fashion-mnist", c, 0) for c in range(10)]
    + [("mnist", d, 1) for d in range(10)]
    + [("fashion-mnist", c, 1) for c in range(10)]
    + [("mnist", d, 2) for d in (2, 3, 4, 5, 7)]
    + [("fashion-mnist", c, 2) for c in (5, 7)]
)
assert len(CLASSES) == 47


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {arr.size} bytes of data, header says {dims}")
    return arr.reshape(dims)


def write_idx(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(
        ">" + "I" * arr.ndim, *arr.shape
    )
    # mtime=0: the same bytes on every run.
    with open(path, "wb") as raw, gzip.GzipFile(
        fileobj=raw, mode="wb", mtime=0, filename=""
    ) as f:
        f.write(header)
        f.write(arr.tobytes())


def build_split(sources, split, per_class, rng):
    """sources[name][split] = (images, labels). Returns x (N,28,28) u8, y (N,) i64, shared."""
    uses = {}  # (source, class) -> list of labels using it, in CLASSES order
    for label, (src, cls, _k) in enumerate(CLASSES):
        uses.setdefault((src, cls), []).append(label)
    xs, ys = [], []
    shared = 0
    for (src, cls), labels in uses.items():
        images, source_labels = sources[src][split]
        idx = np.flatnonzero(source_labels == cls)
        if per_class > len(idx):
            raise SystemExit(
                f"{src} {split} class {cls} has {len(idx)} images, fewer than {per_class}"
            )
        order = idx[rng.permutation(len(idx))]
        need = per_class * len(labels)
        shared += max(0, need - len(order))
        if need > 2 * len(order):
            raise SystemExit(f"{src} {split} class {cls}: {need} needed, {len(order)} images")
        for u, label in enumerate(labels):
            block = order[(u * per_class + np.arange(per_class)) % len(order)]
            k = CLASSES[label][2]
            xs.append(np.rot90(images[block], k=k, axes=(1, 2)))
            ys.append(np.full(per_class, label, dtype=np.int64))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    perm = rng.permutation(len(y))
    return np.ascontiguousarray(x[perm]), y[perm], shared


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--per-class", default="2400,400", help="TRAIN,TEST images per class")
    args = ap.parse_args()
    n_train, n_test = (int(v) for v in args.per_class.split(","))

    sources = {}
    for src in ("mnist", "fashion-mnist"):
        d = os.path.join(args.data, src)
        sources[src] = {
            "train": (
                read_idx(os.path.join(d, "train-images-idx3-ubyte.gz")),
                read_idx(os.path.join(d, "train-labels-idx1-ubyte.gz")),
            ),
            "test": (
                read_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz")),
                read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz")),
            ),
        }

    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for split, per_class in (("train", n_train), ("test", n_test)):
        x, y, shared = build_split(sources, split, per_class, rng)
        assert x.shape == (47 * per_class, 28, 28) and x.dtype == np.uint8
        assert np.all(np.bincount(y, minlength=47) == per_class)
        stem = os.path.join(args.out_dir, f"emnist-style-balanced-{split}")
        write_idx(f"{stem}-images-idx3-ubyte.gz", x)
        write_idx(f"{stem}-labels-idx1-ubyte.gz", y.astype(np.uint8))
        np.savez(os.path.join(args.out_dir, f"emnist-style-{split}.npz"), x=x, y=y)
        print(
            f"{split}: {len(y)} images, 47 classes x {per_class}; "
            f"{shared} source images shared by an upright and a 180-degree class"
        )


if __name__ == "__main__":
    sys.exit(main())
