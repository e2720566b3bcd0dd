"""wgpu_mlp: multi-layer perceptrons trained with backpropagation on any GPU (Vulkan, Metal,
DX12) through wgpu, or on the library's CPU reference, as scikit-learn estimators.

>>> from wgpu_mlp import MLPClassifier
>>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=20).fit(X, y)   # doctest: +SKIP
"""

from . import _core
from ._estimators import MLPClassifier, MLPRegressor, load

__all__ = ["MLPClassifier", "MLPRegressor", "load", "adapters"]


def adapters():
    """One line per adapter wgpu sees (name, backend, device type); any of them, a backend,
    ``'software'`` or ``'cpu'`` (the CPU reference) is a ``device``."""
    return _core.adapters()
