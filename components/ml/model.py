"""The models parties train: built from a ModelSpec, always behind input standardisation.

Every family (``mlp``, declared ``layers``, ``plugin``; see ``components.core.model_spec``) is the same
wrapper: ``standardize`` (buffers ``standardize.mean`` and ``standardize.scale``, fitted by the coordinator
from federated sums) on the flattened input, a reshape of each row to ``input_shape``, then ``body``.

What is sent, and how it is aggregated
--------------------------------------
``get_params`` returns the whole state dict: trained parameters AND buffers (batch-norm ``running_mean``,
``running_var`` and ``num_batches_tracked``, the standardisation tensors, a plug-in's buffers). Every tensor
is sent as float32, whatever its dtype in the module, so the wire layout is uniform and every strategy (FedAvg
and the rest), clipping, noise and secure masking treat buffers like weights: FedAvg averages batch-norm
running statistics weighted by examples, as it does weights. ``set_params`` casts each array back to the
dtype of the module's tensor; integer buffers (``num_batches_tracked``) are rounded to the nearest integer
(exact up to 2**24 batches, and only read by batch norm with ``momentum=None``, which the layers never set).
The standardisation tensors are the exception the strategies already make: fitted, never averaged or trained
(``components.core.standardization``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from components.core.model_spec import ModelSpec
from components.core.params import Params
from components.ml.layers import build_body
from components.ml.plugins import build_plugin_body

WIRE_DTYPE = np.float32  # every tensor of get_params, buffers included


class Standardize(nn.Module):
    """Subtracts a mean and divides by a scale held as buffers (fitted from federated statistics).

    With ``apply=False`` the buffers are still carried (and fitted) but the input passes unchanged: for
    inputs that are indices (embeddings)."""

    def __init__(self, n_features: int, apply: bool = True) -> None:
        super().__init__()
        self.apply_scaling = apply
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale if self.apply_scaling else x


class FederatedModel(nn.Module):
    """Standardise the flat input, reshape each row to the spec's ``input_shape``, then run the body.

    An mlp's body works on the flat rows whatever ``input_shape`` says."""

    def __init__(self, spec: ModelSpec, body: nn.Module) -> None:
        super().__init__()
        self.standardize = Standardize(spec.n_features, apply=spec.standardize)
        self.row_shape = (spec.n_features,) if spec.kind == "mlp" else spec.row_shape
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            x = x.flatten(1)
        x = self.standardize(x)
        if len(self.row_shape) > 1:
            x = x.unflatten(1, self.row_shape)
        return self.body(x)


MLPClassifier = FederatedModel  # the former name of the model class


class ProbabilityModel(nn.Module):
    """Wraps a classifier so that ``forward`` returns class probabilities (for serving)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(x.to(torch.float32)), dim=-1)


class ValueModel(nn.Module):
    """Wraps a regression model so that ``forward`` returns one value per row, shape ``[batch]`` (serving)."""

    def __init__(self, regressor: nn.Module) -> None:
        super().__init__()
        self.regressor = regressor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(x.to(torch.float32)).squeeze(-1)


def serving_model(spec: ModelSpec, model: nn.Module) -> nn.Module:
    """``model`` wrapped for serving, in eval mode: probabilities for classification, values for regression."""
    wrapped = ValueModel(model) if spec.task == "regression" else ProbabilityModel(model)
    return wrapped.eval()


# torch's global generator, held while it is seeded and drawn from (initialisation here, dropout in training), so
# that the threads of concurrent runs (a party serving several coordinators) never draw from each other's seeds
GLOBAL_RNG = threading.RLock()
_BUILT = threading.local()  # per thread: spec (as JSON) -> a model built for it, reloaded by ``model_for``
_BUILT_KEPT = 4


def build_model(spec: ModelSpec) -> FederatedModel:
    """A freshly initialised model; the same seed gives the same weights everywhere.

    A plug-in model that is missing or installed at another version raises ``ConfigError``."""
    with GLOBAL_RNG:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(spec.seed)
        try:
            body = build_plugin_body(spec) if spec.kind == "plugin" else build_body(spec)
            return FederatedModel(spec, body)
        finally:
            torch.random.set_rng_state(generator_state)


def model_for(spec: ModelSpec, params: Mapping[str, np.ndarray]) -> FederatedModel:
    """A model of ``spec`` holding ``params`` (every parameter and buffer): built once per thread and declared
    spec, then reloaded, so that rounds do not initialise a new model per message. A plug-in is built afresh
    every time (it may keep state outside its state dict)."""
    if spec.kind == "plugin":
        model = build_model(spec)
    else:
        models: dict[str, FederatedModel] = _BUILT.__dict__.setdefault("models", {})
        key = spec.model_dump_json()
        model = models.get(key)  # type: ignore[assignment]
        if model is None:
            if len(models) >= _BUILT_KEPT:
                models.clear()
            model = models[key] = build_model(spec)
    set_params(model, params)
    return model


def get_params(model: nn.Module) -> Params:
    """The model's state (parameters and buffers) as float32 NumPy arrays (copies), in state-dict order."""
    return {name: t.detach().cpu().numpy().astype(WIRE_DTYPE, copy=True) for name, t in model.state_dict().items()}


def set_params(model: nn.Module, params: Mapping[str, np.ndarray]) -> None:
    """Load NumPy arrays into the model in place; names and shapes must match exactly.

    Each array is cast to its tensor's dtype; into an integer tensor it is rounded first. The values are
    written into the tensors' own storage (no new tensors, no ``load_state_dict``), which is what a round does
    for every message."""
    state = model.state_dict()
    missing = set(state) - set(params)
    extra = set(params) - set(state)
    if missing or extra:
        raise ValueError(f"parameter names differ: missing {sorted(missing)}, unexpected {sorted(extra)}")
    arrays = {name: np.asarray(params[name]) for name in state}
    for name, tensor in state.items():  # every shape checked before any is written: no half-loaded model
        if arrays[name].shape != tuple(tensor.shape):
            raise ValueError(f"tensor {name!r} has shape {arrays[name].shape}, the model's is {tuple(tensor.shape)}")
    for name, tensor in state.items():
        array = arrays[name]
        if not tensor.dtype.is_floating_point:
            array = np.rint(array.astype(np.float64))
        try:
            storage = tensor.numpy()  # the tensor's own memory (state-dict tensors are detached)
        except TypeError:  # a dtype NumPy lacks (bfloat16): through torch
            with torch.no_grad():
                tensor.copy_(torch.tensor(array))
            continue
        np.copyto(storage, array, casting="unsafe")


def parameter_layout(spec: ModelSpec) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, dtype) of every tensor of the model: what a valid update must look like."""
    return {name: (tuple(a.shape), str(a.dtype)) for name, a in get_params(build_model(spec)).items()}
