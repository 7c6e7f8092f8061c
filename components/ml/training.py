"""Local training and evaluation of a model on one party's rows (PyTorch, CPU).

Targets follow the spec's task: classification labels are class indices ``0..n_classes-1`` (the contract
maps string labels to indices) and train with cross-entropy (optionally class-weighted); regression targets
are floats of shape ``[n]`` or ``[n, 1]`` and train with mean squared error. A plug-in's own ``loss``
replaces either (``components.ml.plugins``).

The learning rate of a round is ``TrainingSpec.learning_rate_at(round_number)``: the schedule runs over
federated rounds (the number the request carries), constant within the round's local epochs. The
optimiser (SGD, Adam, AdamW) starts fresh every round. Shuffling and dropout are seeded from
``training.seed`` and the round, so a party's round is reproducible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from components.core.config import TrainingSpec
from components.core.errors import ConfigError, ContractError
from components.core.model_spec import ModelSpec
from components.core.params import Params
from components.ml.metrics import task_metrics
from components.ml.model import GLOBAL_RNG, get_params, model_for
from components.ml.plugins import plugin_loss

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LocalResult(BaseModel):
    num_examples: int
    loss: float
    learning_rate: float = 0.0  # the round's rate under the schedule


def targets(spec: ModelSpec, labels: np.ndarray) -> torch.Tensor:
    """Labels as the loss wants them: int64 class indices, or float32 values of shape ``[n]``.

    Raises ``ContractError`` for labels the task cannot take (a class index out of range, a 2-d target)."""
    array = np.asarray(labels)
    if spec.task == "regression":
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.number):
            raise ContractError(f"regression targets must be numbers of shape [n] or [n, 1], got {array.shape}")
        return torch.tensor(array.astype(np.float32))
    if array.ndim != 1:
        raise ContractError(f"class labels must have shape [n], got {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.equal(np.mod(array, 1), 0)):
        raise ContractError("class labels must be class indices 0..n_classes-1 (the contract maps names to them)")
    indices = array.astype(np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= spec.n_classes):
        raise ContractError(
            f"class labels run from {indices.min()} to {indices.max()}, outside 0..{spec.n_classes - 1}"
        )
    return torch.tensor(indices)


def outputs(spec: ModelSpec, raw: torch.Tensor) -> torch.Tensor:
    """The model's outputs as the loss takes them: logits ``[n, n_classes]``, or values ``[n]``."""
    return raw.reshape(-1) if spec.task == "regression" else raw


def loss_function(spec: ModelSpec, training: TrainingSpec) -> Loss:
    """The plug-in's loss if it has one, else cross-entropy (class-weighted) or mean squared error."""
    own = plugin_loss(spec)
    if training.class_weights is not None:
        if spec.task == "regression":
            raise ConfigError("class_weights are for classification; this model does regression")
        if len(training.class_weights) != spec.n_classes:
            raise ConfigError(
                f"class_weights has {len(training.class_weights)} weights, the model has {spec.n_classes} classes"
            )
        if own is not None:
            raise ConfigError(f"plug-in model {spec.plugin.name!r} brings its own loss; class_weights cannot apply")
    if own is not None:
        return own
    if spec.task == "regression":
        return nn.MSELoss()
    weight = None if training.class_weights is None else torch.tensor(training.class_weights, dtype=torch.float32)
    return nn.CrossEntropyLoss(weight=weight)


def optimiser_for(parameters: Iterable[nn.Parameter], training: TrainingSpec, lr: float) -> torch.optim.Optimizer:
    params = list(parameters)
    if training.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=training.weight_decay)
    if training.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=training.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=training.momentum, weight_decay=training.weight_decay)


def warm_up() -> None:
    """One optimiser step on a one-number model: torch loads its optimiser machinery (``torch._dynamo``, about a
    second of imports) on first use, which a party does here while a run starts rather than in its first round."""
    torch.set_num_threads(1)
    weight = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    optimiser.zero_grad()
    (weight * 2.0).sum().backward()
    optimiser.step()


def _batches(order: torch.Tensor, size: int, no_singletons: bool) -> list[torch.Tensor]:
    """``order`` cut into batches of ``size``; with ``no_singletons`` a last batch of one row joins the one
    before (batch norm cannot train on one row)."""
    batches = [order[start : start + size] for start in range(0, len(order), size)]
    if no_singletons and len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


_RANDOM_IN_TRAINING = (nn.modules.dropout._DropoutNd, nn.RReLU)  # layers that draw from torch's global generator


@contextlib.contextmanager
def _global_seed(seed: int) -> Iterator[None]:
    """Torch's global generator seeded for this round (dropout masks), restored after, held under ``GLOBAL_RNG``."""
    with GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def train_local(
    spec: ModelSpec,
    params: Mapping[str, np.ndarray],
    features: np.ndarray,
    labels: np.ndarray,
    training: TrainingSpec,
    round_number: int = 0,
) -> tuple[Params, LocalResult]:
    """Train from ``params`` for ``local_epochs`` of mini-batches; return the new state and the mean loss.

    With ``proximal_mu > 0`` the FedProx term ``mu/2 * ||w - w_global||^2`` is added to the loss; with
    ``grad_clip_norm`` each step's gradient is clipped to that norm. Buffers (batch-norm statistics) update as
    torch updates them in training mode and are returned with the weights.
    """
    torch.set_num_threads(1)
    model = model_for(spec, params)
    loss_fn = loss_function(spec, training)
    anchor = [p.detach().clone() for p in model.parameters()] if training.proximal_mu > 0 else None
    x = torch.tensor(np.asarray(features, dtype=np.float32))
    y = targets(spec, labels)
    if len(x) != len(y):
        raise ContractError(f"{len(x)} rows of features but {len(y)} labels")
    lr = training.learning_rate_at(round_number)
    optimiser = optimiser_for(model.parameters(), training, lr)
    seed = training.seed * 100_003 + round_number
    generator = torch.Generator().manual_seed(seed)
    no_singletons = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    model.train()
    total, seen = 0.0, 0
    stochastic = spec.kind == "plugin" or any(isinstance(m, _RANDOM_IN_TRAINING) for m in model.modules())
    with _global_seed(seed) if stochastic else contextlib.nullcontext():
        for _ in range(training.local_epochs):
            order = torch.randperm(len(x), generator=generator)
            for batch in _batches(order, training.batch_size, no_singletons):
                optimiser.zero_grad()
                loss = loss_fn(outputs(spec, model(x[batch])), y[batch])
                if anchor is not None:
                    prox = sum(torch.sum((p - a) ** 2) for p, a in zip(model.parameters(), anchor, strict=True))
                    loss = loss + training.proximal_mu / 2 * prox
                loss.backward()
                if training.grad_clip_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip_norm)
                optimiser.step()
                total += float(loss.detach()) * len(batch)
                seen += len(batch)
    return get_params(model), LocalResult(num_examples=len(x), loss=total / max(seen, 1), learning_rate=lr)


def predict(spec: ModelSpec, params: Mapping[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Class probabilities ``[n, n_classes]`` (classification) or values ``[n]`` (regression)."""
    torch.set_num_threads(1)  # as in training: for these batch sizes, waking a second thread costs more than it saves
    model = model_for(spec, params)
    model.eval()
    with torch.no_grad():
        raw = model(torch.tensor(np.asarray(features, dtype=np.float32)))
        if spec.task == "regression":
            return raw.reshape(-1).numpy()
        return torch.softmax(raw, dim=-1).numpy()


def predict_proba(spec: ModelSpec, params: Mapping[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Class probabilities of the model with ``params`` on ``features`` (classification only)."""
    if spec.task == "regression":
        raise ValueError("a regression model has no class probabilities; use predict")
    return predict(spec, params, features)


def evaluate(
    spec: ModelSpec, params: Mapping[str, np.ndarray], features: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """The task's metrics on labelled rows: ``accuracy``, ``roc_auc``, ``loss`` (log loss) for classification;
    ``rmse``, ``mae``, ``r2``, ``loss`` (mean squared error) for regression."""
    return task_metrics(spec.task, labels, predict(spec, params, features), n_classes=spec.n_classes)
