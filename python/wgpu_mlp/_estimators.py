"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, trained by wgpu-mlp.

Each parameter that scikit-learn has keeps scikit-learn's name, meaning and default; it is
mapped here onto the library's setting (python/README.md lists the mapping). Training itself,
the model file and what it records belong to the library (``wgpu_mlp._core``): a fitted
estimator holds the bytes of the same safetensors file that ``wgpu-mlp train --save`` writes.
"""

import json
import numbers
import os
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _core

# The dtypes the library reads as they are; any other is converted once, to the first.
_DTYPES = (np.float32, np.float64, np.uint8)

# scikit-learn's activation names and the library's.
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
                # Ours: nn.GELU (exact), nn.SiLU, nn.LeakyReLU(0.01).
                "gelu": "gelu", "silu": "silu", "leaky_relu": "leaky-relu"}
_SOLVERS = ("sgd", "adam", "adamw")
_SCHEDULES = ("constant",)

# What the model file records for Python: the class labels and the estimator's parameters.
_CLASSES_KEY = "python_classes"
_PARAMS_KEY = "python_params"


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the epoch loop's stopping
    rule, warm starts and the fitted attributes."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        device="auto",
        weight_decay=None,
        label_smoothing=0.0,
        clip_norm=None,
        dropout=0.0,
        input_dropout=0.0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.clip_norm = clip_norm
        self.dropout = dropout
        self.input_dropout = input_dropout

    # ---- parameters --------------------------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        if any(not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {sizes}.")
        return [int(s) for s in sizes]

    def _check_params(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}."
            )
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {_SOLVERS}, got {self.solver!r}.")
        if self.learning_rate not in _SCHEDULES:
            raise ValueError(
                f"learning_rate must be 'constant', got {self.learning_rate!r} (the library "
                "changes the rate only by a schedule fixed before the run)."
            )
        positive = {"learning_rate_init": self.learning_rate_init, "max_iter": self.max_iter}
        for name, value in positive.items():
            if not (isinstance(value, numbers.Real) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value!r}.")
        if not (isinstance(self.alpha, numbers.Real) and self.alpha >= 0):
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}.")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}."
            )
        if not (isinstance(self.n_iter_no_change, numbers.Integral) and self.n_iter_no_change > 0):
            raise ValueError(f"n_iter_no_change must be > 0, got {self.n_iter_no_change!r}.")

    def _batch(self, n_samples):
        """scikit-learn's batch: 'auto' is min(200, n); a size outside [1, n] is clipped."""
        if self.batch_size == "auto":
            return min(200, n_samples)
        if not isinstance(self.batch_size, numbers.Integral):
            raise ValueError(f"batch_size must be 'auto' or an integer, got {self.batch_size!r}.")
        if not 1 <= self.batch_size <= n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
            )
        return int(np.clip(self.batch_size, 1, n_samples))

    def _settings(self, n_samples, epochs, seed, validation):
        """The library's settings (``TrainSpec``'s names) for this fit."""
        batch = self._batch(n_samples)
        dropout = self.dropout
        dropout = [float(dropout)] if isinstance(dropout, numbers.Real) else list(dropout)
        weight_decay = self.weight_decay
        if weight_decay is None and self.solver != "adamw":
            # alpha/(2·batch)·‖W‖² added to each batch's loss is an L2 decay of alpha/batch.
            weight_decay = self.alpha / batch
        # A warm start continues the model's own layers.
        new = self._model is None
        return {
            "hidden_sizes": self._hidden_sizes() if new else None,
            "hidden": _ACTIVATIONS[self.activation] if new else None,
            "output": self._output if new else None,
            "optimizer": self.solver,
            "momentum": float(self.momentum),
            "beta_1": float(self.beta_1),
            "beta_2": float(self.beta_2),
            "epsilon": float(self.epsilon),
            "learning_rate": float(self.learning_rate_init),
            "weight_decay": None if weight_decay is None else float(weight_decay),
            "batch_size": batch,
            "seed": seed,
            "epochs": int(epochs),
            "shuffle": bool(self.shuffle),
            "validation": float(validation),
            "label_smoothing": float(self.label_smoothing),
            "clip_norm": None if self.clip_norm is None else float(self.clip_norm),
            "dropout": dropout,
            "input_dropout": float(self.input_dropout),
            "device": str(self.device),
        }

    # ---- fitting -----------------------------------------------------------------------------

    def _validate_input(self, X, y, reset):
        X, y = validate_data(
            self,
            X,
            y,
            reset=reset,
            dtype=_DTYPES,
            order="C",
            multi_output=not self._is_classifier,
            y_numeric=not self._is_classifier,
        )
        return X, y

    def _seed(self):
        """An int ``random_state`` is the library's seed as it is (as ``--seed``), so that the
        same seed trains the same model as the CLI; otherwise one is drawn from it."""
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _fit(self, X, y, incremental, classes=None):
        self._check_params()
        first = not (incremental or self.warm_start) or not hasattr(self, "_model")
        X, targets = self._prepare(X, y, reset=first, classes=classes, incremental=incremental)
        if not first and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        seed = self._seed()
        if first:
            self._model = None
            self._optimizer_state = None
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        early_stopping = self.early_stopping and not incremental
        if early_stopping:
            if round(X.shape[0] * self.validation_fraction) < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the size "
                    "of your dataset."
                )
            if self.validation_scores_ is None:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            self._best_model = self._model
        validation = self.validation_fraction if early_stopping else 0.0
        epochs = 1 if incremental else self.max_iter
        # scikit-learn sizes 'auto' batches by the samples left after the validation split.
        trained = X.shape[0] - round(X.shape[0] * validation)
        settings = self._settings(trained, epochs, seed, validation)
        samples = X.shape[0]
        self._converged = False

        def on_epoch(report):
            return self._after_epoch(report, early_stopping, incremental, samples)

        try:
            model, state, summary = _core.fit(
                X,
                targets,
                self._n_classes(),
                settings,
                self._model,
                self._optimizer_state,
                on_epoch,
            )
        except KeyboardInterrupt:
            # The estimator stays as after the last completed epoch; the optimizer's moments of
            # the interrupted epoch are not kept.
            self._optimizer_state = None
            if self._model is not None:
                self._set_fitted(self._model)
            raise
        self._optimizer_state = state
        self.summary_ = json.loads(summary)
        if early_stopping:
            model = self._best_model
            del self._best_model
        elif not incremental and self.n_iter_ == self.max_iter and not self._converged:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
            )
        self._set_fitted(model)
        return self

    def _after_epoch(self, report, early_stopping, incremental, samples):
        """scikit-learn's rule after each epoch: record the loss (and validation score), count
        epochs without an improvement of at least ``tol``, and stop after more than
        ``n_iter_no_change`` of them. Answers whether to go on."""
        self._model = report["model"]
        self.n_iter_ += 1
        self.t_ += samples
        self.loss_curve_.append(float(report["train_loss"]))
        self.loss_ = self.loss_curve_[-1]
        if self.verbose:
            for note in report["notes"]:
                print(note, flush=True)
            print(report["line"], flush=True)
        if incremental:
            self.best_loss_ = min(self.best_loss_, self.loss_)
            return True
        if early_stopping:
            score = float(report["val_score"])
            self.validation_scores_.append(score)
            improved = score >= self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_model = self._model
        else:
            improved = self.loss_ <= self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, self.loss_)
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
        if self._no_improvement_count <= self.n_iter_no_change:
            return True
        if self.verbose:
            what = "Validation score" if early_stopping else "Training loss"
            print(
                f"{what} did not improve more than tol={self.tol:f} for "
                f"{self.n_iter_no_change} consecutive epochs. Stopping."
            )
        self._converged = True
        return False

    def _set_fitted(self, model):
        """The fitted attributes of the model file's bytes ``model``: ``coefs_`` and
        ``intercepts_`` in scikit-learn's [in, out] layout, acting on the features as given."""
        self._model = model
        described = _core.describe(model)
        layers = described["layers"]
        self.coefs_ = [np.ascontiguousarray(w.T) for w, _ in layers]
        self.intercepts_ = [b for _, b in layers]
        if described["metadata"].get("input_scaling") == "bytes":
            # The model divides uint8 features by 255 before its first layer.
            self.coefs_[0] = self.coefs_[0] / np.float32(255)
        self.n_layers_ = len(layers) + 1
        self.n_outputs_ = len(self.intercepts_[-1])
        self.out_activation_ = _OUT_ACTIVATIONS.get(described["activations"][-1])

    def _outputs(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_DTYPES, order="C")
        return _core.predict(self._model, X).astype(np.float64)

    def fit(self, X, y):
        """Fits the model to ``X`` and ``y``, for at most ``max_iter`` epochs."""
        return self._fit(X, y, incremental=False)

    # ---- files -------------------------------------------------------------------------------

    def save(self, path):
        """Writes the model to ``path`` as the safetensors file ``wgpu-mlp train --save`` writes
        (``wgpu-mlp eval`` and ``predict`` read it; :func:`wgpu_mlp.load` reads it back), and
        the optimizer's state beside it (``NAME.optimizer.safetensors``), from which
        ``wgpu-mlp train --resume`` continues exactly."""
        check_is_fitted(self)
        metadata = {_PARAMS_KEY: json.dumps(_json_params(self.get_params()))}
        if self._is_classifier:
            metadata[_CLASSES_KEY] = json.dumps(self.classes_.tolist())
        model = _core.with_metadata(self._model, metadata)
        _core.save(model, os.fspath(path), self._optimizer_state)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_model")


# The library's output activations by scikit-learn's names.
_OUT_ACTIVATIONS = {library: ours for ours, library in _ACTIVATIONS.items()}
_OUT_ACTIVATIONS["softmax"] = "softmax"


def _json_params(params):
    """The parameters that JSON can hold (all but a RandomState)."""
    return {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool, list, tuple,
                                                              type(None)))}


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier with scikit-learn's interface, trained by wgpu-mlp on
    any GPU (``device``) or on its CPU reference (``device='cpu'``).

    The output layer is a softmax with the cross-entropy loss, for two classes too (scikit-learn
    uses one logistic unit there); see python/README.md for how each parameter maps onto the
    library.
    """

    _is_classifier = True

    # The output layer; the library's loss for it is the cross-entropy.
    _output = "softmax"

    def _n_outputs(self, targets):
        return len(self.classes_)

    def _n_classes(self):
        return len(self.classes_)

    def _prepare(self, X, y, reset, classes, incremental):
        X, y = self._validate_input(X, y, reset)
        check_classification_targets(y)
        if type_of_target(y) == "multilabel-indicator":
            raise ValueError("multilabel targets are not supported; give one label per sample.")
        if incremental:
            if _check_partial_fit_first_call(self, classes):
                self._label_binarizer = LabelBinarizer().fit(self.classes_)
        elif reset or not hasattr(self, "classes_"):
            self.classes_ = np.unique(y)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(
                f"y has classes {unknown.tolist()} not in classes_ {self.classes_.tolist()}."
            )
        return X, np.searchsorted(self.classes_, y).astype(np.uint32)

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X`` and ``y``; ``classes`` (every class) is required on the first
        call."""
        first = not hasattr(self, "_model")
        return self._fit(X, y, incremental=True, classes=classes if first else None)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        outputs = self._outputs(X)
        if self.out_activation_ != "softmax":
            outputs = np.clip(outputs, 0, None)
            outputs /= np.maximum(outputs.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        return outputs

    def predict_log_proba(self, X):
        """The logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample."""
        outputs = self._outputs(X)
        return self.classes_[np.argmax(outputs, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor with scikit-learn's interface, trained by wgpu-mlp:
    identity outputs and the mean squared error (PyTorch's ``MSELoss``)."""

    _is_classifier = False

    # The output layer; the library's loss for it is the mean squared error.
    _output = "identity"

    def _n_outputs(self, targets):
        return targets.shape[1]

    def _n_classes(self):
        return None

    def _prepare(self, X, y, reset, classes, incremental):
        X, y = self._validate_input(X, y, reset)
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        return X, np.ascontiguousarray(y)

    def partial_fit(self, X, y):
        """One epoch over ``X`` and ``y``."""
        return self._fit(X, y, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        """The model's outputs, 1-D for a single target."""
        outputs = self._outputs(X)
        return outputs.ravel() if outputs.shape[1] == 1 else outputs


def load(path):
    """The estimator saved in ``path``: a model file written by :meth:`MLPClassifier.save`,
    ``wgpu-mlp train --save`` or the page. A classification model gives an
    :class:`MLPClassifier`, a regression model an :class:`MLPRegressor`, fitted."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        model = file.read()
    described = _core.describe(model, path)
    metadata = described["metadata"]
    classifier = metadata.get("task", "classification") == "classification"
    estimator = MLPClassifier() if classifier else MLPRegressor()
    params = json.loads(metadata.get(_PARAMS_KEY, "{}"))
    sizes = described["sizes"]
    params["hidden_layer_sizes"] = tuple(params.get("hidden_layer_sizes", sizes[1:-1]))
    hidden = described["activations"][0] if len(sizes) > 2 else "relu"
    params.setdefault("activation", _OUT_ACTIVATIONS.get(hidden, hidden))
    estimator.set_params(**{k: v for k, v in params.items() if k in estimator.get_params()})
    if classifier:
        estimator.classes_ = np.array(json.loads(metadata.get(_CLASSES_KEY, "null"))
                                      or list(range(sizes[-1])))
    estimator.n_features_in_ = sizes[0]
    estimator.n_iter_ = described["epochs"]
    estimator._optimizer_state = None
    estimator._set_fitted(model)
    return estimator
