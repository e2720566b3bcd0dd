#!/usr/bin/env python3
"""Writes tests/data/mnist: the first 6,000 training and the first 1,000 test images of MNIST;
and tests/data/formats: small .npz, .csv and IDX files (and what numpy reads from them) for the
file-loader tests.

The subset is what the CLI test trains on (it asks for --train-size 6000 --test-size 1000, which
take the first samples), so a fresh clone runs that test without the full data set. Reads the
published files from ../shared/data/mnist (or the folder given as the first argument) and writes
gzipped IDX files in the same format. The output is the same bytes on every run: the gzip header
carries no file name and an mtime of 0.

tests/data/formats is written by numpy itself (np.savez, np.savez_compressed, np.lib.format)
with zip timestamps pinned to 1980-01-01, so a rerun writes the same bytes given the same numpy
and zlib; expected.json holds the values numpy reads back, for the tests to compare against.

Usage: scripts/make_test_data.py [SOURCE_DIR]   (both)
       scripts/make_test_data.py --formats      (tests/data/formats only; needs numpy)
"""

import gzip
import hashlib
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
SOURCE = Path(ARGS[0]) if ARGS else ROOT.parent / "shared" / "data" / "mnist"
DESTINATION = ROOT / "tests" / "data" / "mnist"
TRAIN_COUNT = 6000
TEST_COUNT = 1000

# (file, samples kept, IDX magic number of the file).
FILES = [
    ("train-images-idx3-ubyte", TRAIN_COUNT, 0x803),
    ("train-labels-idx1-ubyte", TRAIN_COUNT, 0x801),
    ("t10k-images-idx3-ubyte", TEST_COUNT, 0x803),
    ("t10k-labels-idx1-ubyte", TEST_COUNT, 0x801),
]


def subset(data: bytes, count: int, magic: int) -> bytes:
    """The IDX file `data` cut to its first `count` samples, with the count in its header fixed."""
    found, total = struct.unpack(">II", data[:8])
    if found != magic:
        raise SystemExit(f"magic number {found:#x}, expected {magic:#x}")
    if total < count:
        raise SystemExit(f"{total} samples, fewer than the {count} wanted")
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        header, sample = struct.pack(">IIII", magic, count, rows, cols), rows * cols
    else:
        header, sample = struct.pack(">II", magic, count), 1
    start = len(header)
    return header + data[start : start + count * sample]


def make_mnist() -> None:
    DESTINATION.mkdir(parents=True, exist_ok=True)
    for name, count, magic in FILES:
        with gzip.open(SOURCE / f"{name}.gz", "rb") as source:
            data = subset(source.read(), count, magic)
        path = DESTINATION / f"{name}.gz"
        with open(path, "wb") as raw:
            # No file name and mtime 0 in the header: the bytes depend on the data alone.
            with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as out:
                out.write(data)
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        print(f"{digest}  {path.relative_to(ROOT)}  ({path.stat().st_size} bytes, {count} samples)")


FORMATS = ROOT / "tests" / "data" / "formats"
PINNED_DATE = (1980, 1, 1, 0, 0, 0)


class pinned_zip_dates:
    """Makes zipfile (and so np.savez) stamp every entry 1980-01-01 00:00 instead of now."""

    def __enter__(self):
        import time
        import types
        import zipfile

        self.zipfile, self.time = zipfile, zipfile.time
        zipfile.time = types.SimpleNamespace(
            time=lambda: 0.0, localtime=lambda *_: PINNED_DATE + (0, 1, 0)
        )
        return self

    def __exit__(self, *_):
        self.zipfile.time = self.time


def npy_bytes(array, version=None) -> bytes:
    """`array` as a .npy file, written by numpy."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=True)
    return buffer.getvalue()


def write_zip(path: Path, entries: dict) -> None:
    """A zip of `entries` (name → bytes), stored, dated PINNED_DATE."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=PINNED_DATE), data)


def write_idx(path: Path, array, gz: bool) -> None:
    """`array` (uint8) as an IDX file, gzipped without a name or mtime if `gz`."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if gz:
        with open(path, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as out:
                out.write(data)
    else:
        path.write_bytes(data)


def floats(array) -> list:
    """float32 values as JSON numbers (exact: every float32 is a float64)."""
    import numpy as np

    return np.asarray(array, dtype=np.float32).astype(np.float64).tolist()


def make_formats() -> None:
    """Writes tests/data/formats and expected.json."""
    import json

    import numpy as np

    FORMATS.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(15)
    expected = {}

    def savez(name, compressed=False, **arrays):
        save = np.savez_compressed if compressed else np.savez
        with pinned_zip_dates():
            save(FORMATS / name, **arrays)

    # Images: uint8 (N, H, W) with int64 labels; the largest label 4 → 5 classes.
    x = rng.integers(0, 256, size=(12, 4, 3), dtype=np.uint8)
    y = rng.integers(0, 4, size=12).astype(np.int64)
    y[7] = 4
    savez("images_u8.npz", x=x, y=y)
    expected["images_u8.npz"] = {"x": x.reshape(12, -1).tolist(), "y": y.tolist(), "classes": 5}

    # Regression: float32 (N, D), column 2 constant; targets (N,) float32 and (N, K) float64.
    x = (rng.normal(size=(10, 3)) * [1.0, 10.0, 0.0] + [0.5, -20.0, 3.5]).astype(np.float32)
    y = rng.normal(size=10).astype(np.float32) * 4 + 1
    y2 = rng.normal(size=(10, 2)) * [1.0, 100.0]
    savez("regression.npz", x=x, y=y)
    savez("regression_multi.npz", x=x, y=y2)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    mean, std = x64.mean(axis=0), x64.std(axis=0)
    std32 = np.where(std.astype(np.float32) > 0, std.astype(np.float32), np.float32(1))
    expected["regression.npz"] = {
        "x": floats(x),
        "y": floats(y),
        "x_mean": mean.tolist(),
        "x_std": std.tolist(),
        "x_standardized": floats((x - mean.astype(np.float32)) / std32),
        "y_mean": float(y64.mean()),
        "y_std": float(y64.std()),
    }
    expected["regression_multi.npz"] = {"y": floats(y2)}

    # float64 features, compressed, int32 labels: rounded to f32 as numpy's astype does.
    x = rng.normal(size=(9, 4)) / 3
    y = np.array([0, 1, 2, 1, 0, 2, 2, 1, 0], dtype=np.int32)
    savez("compressed_f64.npz", compressed=True, x=x, y=y)
    expected["compressed_f64.npz"] = {"x": floats(x), "y": y.tolist(), "classes": 3}

    # Big-endian float64 features and int32 labels.
    x = (rng.normal(size=(6, 3)) * 1000).astype(">f8")
    y = np.array([3, 0, 1, 2, 0, 1], dtype=">i4")
    savez("big_endian.npz", x=x, y=y)
    expected["big_endian.npz"] = {"x": floats(x), "y": y.tolist(), "classes": 4}

    # Column-major: float32 (N, D) with uint8 labels, and uint8 images with uint16 labels.
    x = np.asfortranarray(rng.normal(size=(7, 3)).astype(np.float32))
    y = np.array([1, 0, 1, 1, 0, 0, 1], dtype=np.uint8)
    savez("fortran.npz", x=x, y=y)
    expected["fortran.npz"] = {"x": floats(x), "y": y.tolist(), "classes": 2}
    x = np.asfortranarray(rng.integers(0, 256, size=(4, 3, 2), dtype=np.uint8))
    y = np.array([2, 0, 1, 2], dtype=np.uint16)
    savez("fortran_images.npz", x=x, y=y)
    expected["fortran_images.npz"] = {"x": x.reshape(4, -1).tolist(), "y": y.tolist()}

    # .npy header versions 2 and 3, written by numpy into a plain zip.
    x = rng.normal(size=(3, 2)).astype(np.float32)
    y = np.array([0.5, -1.5, 2.25], dtype=np.float32)
    write_zip(FORMATS / "versions.npz", {"x.npy": npy_bytes(x, (2, 0)), "y.npy": npy_bytes(y, (3, 0))})
    expected["versions.npz"] = {"x": floats(x), "y": floats(y)}

    # Whole-number float targets: regression unless classification is asked for.
    x = rng.normal(size=(5, 2)).astype(np.float32)
    savez("whole_floats.npz", x=x, y=np.array([0.0, 2.0, 1.0, 2.0, 0.0]))
    expected["whole_floats.npz"] = {"y": [0, 2, 1, 2, 0]}

    # Bad archives.
    labels = np.array([0, 1, 0, 1, 1])
    savez("object.npz", x=np.array([[1.0, 2.0]] * 5, dtype=object), y=labels)
    savez("strings.npz", x=x, y=np.array(["a", "bb", "a", "c", "d"]))
    savez("bool.npz", x=np.ones((5, 2), dtype=bool), y=labels)
    savez("complex.npz", x=x, y=np.ones(5, dtype=np.complex64))
    savez("no_y.npz", x=x)
    nan = x.copy()
    nan[2, 1] = np.nan
    savez("nan.npz", x=nan, y=labels)
    savez("mismatched.npz", x=x, y=labels[:4])
    savez("negative_labels.npz", x=x, y=np.array([0, 1, 2, -1, 1]))
    savez("zero_length.npz", x=np.zeros((0, 3), dtype=np.float32), y=np.zeros(0, dtype=np.int64))
    full = npy_bytes(rng.normal(size=(6, 3)).astype(np.float32))
    write_zip(FORMATS / "truncated_array.npz", {"x.npy": full[:-32], "y.npy": npy_bytes(labels[:1].repeat(6))})
    whole = (FORMATS / "regression.npz").read_bytes()
    (FORMATS / "truncated_archive.npz").write_bytes(whole[: len(whole) // 2])

    make_csv_files(expected)
    make_idx_files(rng, expected)
    text = json.dumps(expected, indent=1, sort_keys=True) + "\n"
    (FORMATS / "expected.json").write_text(text)
    for path in sorted(FORMATS.iterdir()):
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        print(f"{digest}  {path.relative_to(ROOT)}  ({path.stat().st_size} bytes)")


def make_csv_files(expected: dict) -> None:
    """CSV files: regression with quoted fields, an integer target column, and bad ones."""
    import numpy as np

    rows = [
        ["0.5", "-1.25", "3", "10.5"],
        ["1.75", '"2.5"', "-4", "-3.25"],
        ["-0.125", "1e-3", "0", "7"],
        ["2", "3.14159", "1.5", '"0.1"'],
    ]
    header = 'a,"b, quoted",c,price'
    text = header + "\n" + "".join(",".join(row) + "\n" for row in rows)
    (FORMATS / "regression.csv").write_text(text)
    values = [[np.float32(v.strip('"')) for v in row] for row in rows]
    expected["regression.csv"] = {
        "x": floats([row[:3] for row in values]),
        "y": floats([row[3] for row in values]),
        "columns": ["a", "b, quoted", "c", "price"],
    }

    rows = [["1.5", "2", "0.25"], ["-2", "0", "8"], ["3.5", '"5"', "-1"], ["0", "1", "2.5"]]
    text = 'height,label,"width"\n' + "".join(",".join(r) + "\n" for r in rows)
    (FORMATS / "classes.csv").write_text(text)
    expected["classes.csv"] = {
        "x": floats([[float(r[0]), float(r[2])] for r in rows]),
        "y": [int(r[1].strip('"')) for r in rows],
        "classes": 6,
    }

    (FORMATS / "ragged.csv").write_text("a,b,c\n1,2,3\n4,5,6\n7,8\n")
    (FORMATS / "text.csv").write_text("a,b,c\n1,2,3\n4,abc,6\n")
    (FORMATS / "infinite.csv").write_text("a,b,c\n1,2,3\n4,5,6\n7,inf,9\n")
    (FORMATS / "empty.csv").write_text("")
    (FORMATS / "header_only.csv").write_text("a,b,c\n")


def make_idx_files(rng, expected: dict) -> None:
    """An EMNIST-style pair (47 classes, 4×3 images), a test pair with fewer classes whose
    labels are not gzipped, and images with no labels beside them."""
    import numpy as np

    images = rng.integers(0, 256, size=(60, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 47, size=60).astype(np.uint8)
    labels[[5, 50]] = [46, 0]
    write_idx(FORMATS / "emnist-balanced-train-images-idx3-ubyte.gz", images, gz=True)
    write_idx(FORMATS / "emnist-balanced-train-labels-idx1-ubyte.gz", labels, gz=True)
    expected["emnist-balanced-train"] = {
        "pixel_sum": int(images.astype(np.int64).sum()),
        "first": images[0].reshape(-1).tolist(),
        "labels": labels.tolist(),
        "classes": int(labels.max()) + 1,
    }
    images = rng.integers(0, 256, size=(20, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 31, size=20).astype(np.uint8)
    labels[3] = 30
    write_idx(FORMATS / "emnist-balanced-test-images-idx3-ubyte.gz", images, gz=True)
    write_idx(FORMATS / "emnist-balanced-test-labels-idx1-ubyte", labels, gz=False)
    expected["emnist-balanced-test"] = {
        "pixel_sum": int(images.astype(np.int64).sum()),
        "labels": labels.tolist(),
        "classes": int(labels.max()) + 1,
    }
    write_idx(FORMATS / "orphan-images-idx3-ubyte.gz", images[:2], gz=True)


def main() -> None:
    if "--formats" not in sys.argv[1:]:
        make_mnist()
    make_formats()


if __name__ == "__main__":
    main()
