"""The model family parties train: a small MLP with built-in input standardisation."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from components.core.model_spec import ModelSpec
from components.core.params import Params


class Standardize(nn.Module):
    """Subtracts a mean and divides by a scale held as buffers (fitted from federated statistics)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class MLPClassifier(nn.Module):
    """Standardise, then hidden ReLU layers, then class logits."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.standardize = Standardize(spec.n_features)
        layers: list[nn.Module] = []
        width = spec.n_features
        for hidden in spec.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, spec.n_classes))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.standardize(x))


class ProbabilityModel(nn.Module):
    """Wraps a classifier so that ``forward`` returns class probabilities (for serving)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(x.to(torch.float32)), dim=-1)


def build_model(spec: ModelSpec) -> MLPClassifier:
    """A freshly initialised model; the same seed gives the same weights everywhere."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)
    try:
        return MLPClassifier(spec)
    finally:
        torch.random.set_rng_state(generator_state)


def get_params(model: nn.Module) -> Params:
    """The model's state as float32 NumPy arrays (copies), in state-dict order."""
    return {name: t.detach().cpu().numpy().astype(np.float32, copy=True) for name, t in model.state_dict().items()}


def set_params(model: nn.Module, params: Mapping[str, np.ndarray]) -> None:
    """Load NumPy arrays into the model; names and shapes must match exactly."""
    state = model.state_dict()
    missing = set(state) - set(params)
    extra = set(params) - set(state)
    if missing or extra:
        raise ValueError(f"parameter names differ: missing {sorted(missing)}, unexpected {sorted(extra)}")
    model.load_state_dict({name: torch.from_numpy(np.asarray(params[name], dtype=np.float32).copy()) for name in state})


def parameter_layout(spec: ModelSpec) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, dtype) of every tensor of the model: what a valid update must look like."""
    return {name: (tuple(a.shape), str(a.dtype)) for name, a in get_params(build_model(spec)).items()}
