"""The model sizes the benchmarks use: MLPs on digits' 64 features with about 10K, 1M, 10M and 50M weights."""

from __future__ import annotations

import math

import numpy as np

from components.core.model_spec import ModelSpec
from components.core.params import Params
from components.ml.model import parameter_layout

SIZES = {"10K": 10_000, "1M": 1_000_000, "10M": 10_000_000, "50M": 50_000_000}
N_FEATURES, N_CLASSES = 64, 10


def hidden_for(parameters: int, n_features: int = N_FEATURES, n_classes: int = N_CLASSES) -> list[int]:
    """Hidden widths giving about ``parameters`` weights: one layer up to 20K, else two equal layers."""
    if parameters <= 20_000:
        return [max(1, round((parameters - n_classes) / (n_features + 1 + n_classes)))]
    # h^2 + (n_features + n_classes + 2) h + n_classes = parameters
    b = n_features + n_classes + 2
    return [round((-b + math.sqrt(b * b + 4 * (parameters - n_classes))) / 2)] * 2


def spec_for(parameters: int) -> ModelSpec:
    return ModelSpec(n_features=N_FEATURES, n_classes=N_CLASSES, hidden=hidden_for(parameters))


def parameter_count(spec: ModelSpec) -> int:
    """Numbers in every tensor of the model (weights, biases and the input-scaling buffers)."""
    return sum(math.prod(shape) for shape, _ in parameter_layout(spec).values())


def model_bytes(spec: ModelSpec) -> int:
    """Bytes of every tensor of the model (weights, biases and the input-scaling buffers)."""
    return sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in parameter_layout(spec).values())


def filled_params(spec: ModelSpec, value: float = 0.0) -> Params:
    """Tensors named and shaped like the model's, all equal to ``value``."""
    return {name: np.full(shape, value, dtype=dtype) for name, (shape, dtype) in parameter_layout(spec).items()}
