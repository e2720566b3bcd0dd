"""Python and the CLI are two doors to one library: the same seed trains the same losses on
the same adapter, and a model file written by either is evaluated identically by the other."""

import json

import numpy as np
import pytest

import wgpu_mlp
from wgpu_mlp import MLPClassifier

from conftest import blobs, forward, softmax


@pytest.fixture
def data(tmp_path):
    x, y = blobs(n=300, features=6, classes=4, seed=2)
    path = tmp_path / "train.npz"
    np.savez(path, x=x, y=y)
    return x, y, path


@pytest.mark.parametrize("device", ["cpu", "software"])
def test_same_seed_same_losses_as_the_cli(cli, data, device):
    x, y, path = data
    where = ["--cpu"] if device == "cpu" else ["--adapter", "software"]
    summary = json.loads(cli(
        "train", "--train", path, "--test", path, "--normalize", "none", "--validation", "0",
        "--hidden-sizes", "16,8", "--lr", "0.01", "--batch", "32", "--epochs", "3",
        "--seed", "11", "--weight-decay", "0", "--json", *where))
    clf = MLPClassifier((16, 8), learning_rate_init=0.01, batch_size=32, max_iter=3, alpha=0,
                        random_state=11, device=device).fit(x, y)
    assert summary["epochs"] == clf.n_iter_ == 3
    assert clf.loss_curve_[-1] == pytest.approx(summary["train_loss"], rel=1e-6)
    # One summary for every door: Python's has the CLI's keys (less the test set's scores, as
    # fit has no test set) with the same values, timings aside.
    ours = clf.summary_
    assert set(ours) == {k for k in summary if not k.startswith("test_")}
    for key in ("epochs", "adapter", "task", "best_epoch", "stopped_early", "interrupted"):
        assert ours[key] == summary[key], key
    assert ours["train_loss"] == pytest.approx(summary["train_loss"], rel=1e-6)


def test_a_python_model_evaluates_identically_with_the_cli(cli, data, tmp_path):
    x, y, path = data
    clf = MLPClassifier((16,), max_iter=20, random_state=0, device="cpu").fit(x, y)
    clf.save(tmp_path / "py.safetensors")
    summary = json.loads(cli("eval", "--model", tmp_path / "py.safetensors", "--test", path,
                             "--cpu", "--json"))
    assert summary["test_accuracy"] == pytest.approx(clf.score(x, y), abs=1e-12)
    # The mean cross-entropy of the probabilities computed here from coefs_.
    p = softmax(forward(clf.coefs_, clf.intercepts_, x, "relu"))
    assert summary["test_loss"] == pytest.approx(-np.mean(np.log(p[np.arange(len(y)), y])),
                                                 rel=1e-4)


def test_a_cli_model_loads_in_python(cli, data, tmp_path):
    x, y, path = data
    model = tmp_path / "cli.safetensors"
    cli("train", "--train", path, "--validation", "0", "--hidden-sizes", "12", "--epochs", "10",
        "--lr", "0.01", "--cpu", "--save", model, "--json")
    summary = json.loads(cli("eval", "--model", model, "--test", path, "--cpu", "--json"))
    clf = wgpu_mlp.load(model)
    assert type(clf) is MLPClassifier and clf.n_iter_ == 10 and clf.coefs_[0].shape == (6, 12)
    # The CLI standardized the features (its default) and recorded it; Python applies it.
    assert clf.score(x, y) == pytest.approx(summary["test_accuracy"], abs=1e-12)
    assert clf.score(x, y) > 0.8


def test_a_cli_regression_model_predicts_in_the_targets_units(cli, tmp_path):
    """The CLI standardizes features and targets by default and records both; the loaded
    estimator's predictions come back in the targets' units, with the CLI's RMSE and R²."""
    rng = np.random.default_rng(4)
    x = rng.normal(3, 2, (200, 3)).astype(np.float32)
    y = (100 + 10 * x[:, 0] - 5 * x[:, 1]).astype(np.float32)
    path, model = tmp_path / "values.npz", tmp_path / "reg.safetensors"
    np.savez(path, x=x, y=y)
    cli("train", "--train", path, "--task", "regression", "--validation", "0", "--epochs", "30",
        "--lr", "0.01", "--hidden-sizes", "16", "--cpu", "--save", model, "--json")
    summary = json.loads(cli("eval", "--model", model, "--test", path, "--cpu", "--json"))
    reg = wgpu_mlp.load(model)
    assert type(reg) is wgpu_mlp.MLPRegressor
    predicted = reg.predict(x)
    rmse = np.sqrt(np.mean((predicted - y) ** 2))
    assert rmse == pytest.approx(summary["test_rmse"], rel=1e-4)
    assert reg.score(x, y) == pytest.approx(summary["test_r2"], rel=1e-4)
    assert rmse < 0.2 * y.std()


def test_the_cli_resumes_a_python_model_exactly(cli, data, tmp_path):
    """Two epochs in Python, saved, and one more by `wgpu-mlp train --resume` train the same
    losses as three epochs in Python."""
    x, y, path = data
    settings = dict(hidden_layer_sizes=(16,), learning_rate_init=0.01, batch_size=32,
                    random_state=3, device="cpu")
    two = MLPClassifier(max_iter=2, **settings).fit(x, y)
    two.save(tmp_path / "two.safetensors")
    assert (tmp_path / "two.optimizer.safetensors").exists()
    summary = json.loads(cli("train", "--resume", tmp_path / "two.safetensors", "--train", path,
                             "--test", path, "--epochs", "1", "--cpu", "--json"))
    three = MLPClassifier(max_iter=3, **settings).fit(x, y)
    assert summary["epochs"] == 3
    assert summary["train_loss"] == pytest.approx(three.loss_curve_[-1], rel=1e-7, abs=0)
