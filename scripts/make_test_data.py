#!/usr/bin/env python3
"""Writes tests/data/mnist: the first 6,000 training and the first 1,000 test images of MNIST.

The subset is what the CLI test trains on (it asks for --train-size 6000 --test-size 1000, which
take the first samples), so a fresh clone runs that test without the full data set. Reads the
published files from ../shared/data/mnist (or the folder given as the first argument) and writes
gzipped IDX files in the same format. The output is the same bytes on every run: the gzip header
carries no file name and an mtime of 0.

Usage: scripts/make_test_data.py [SOURCE_DIR]
"""

import gzip
import hashlib
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "mnist"
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


def main() -> None:
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


if __name__ == "__main__":
    main()
