"""A GLM as the model every other run serves: a linear model with the fitted input standardisation.

The coefficients ``[b0, b1..bp]`` act on ``(x - mean) / scale`` (the standardisation fitted from federated sums,
as every model family has it). For serving and evaluation they become the parameters of the ``layers`` family
with no declared layers (one linear head): regression (gaussian) answers ``b0 + x'b``; binary (binomial) answers
the softmax of the two logits ``[0, b0 + x'b]``, which is the logistic probability of the contract's second class;
poisson (a regression contract of counts) answers ``exp(b0 + x'b)`` (the linear layer, then ``exp``).
"""

from __future__ import annotations

import numpy as np

from components.core import standardization
from components.core.glm.family import FamilyName
from components.core.model_spec import Activation, Linear, ModelSpec
from components.core.params import Params
from components.core.tasks import TaskKind

WEIGHT = "body.0.weight"
BIAS = "body.0.bias"
FAMILY_TASKS: dict[FamilyName, TaskKind] = {"gaussian": "regression", "binomial": "binary", "poisson": "regression"}


def family_problem(family: str, task: TaskKind) -> str | None:
    """Why a GLM of ``family`` cannot be fitted to a contract of ``task``, or None."""
    if family not in FAMILY_TASKS:
        return f"unknown GLM family {family!r}; choose one of [{', '.join(FAMILY_TASKS)}]"
    if FAMILY_TASKS[family] != task:  # type: ignore[index]
        return f"family {family!r} needs a {FAMILY_TASKS[family]} contract, this one is {task}"  # type: ignore[index]
    return None


def glm_spec(n_features: int, task: TaskKind, family: str = "gaussian") -> ModelSpec:
    """The served shape of a GLM: a linear head on the standardised features (then ``exp`` for poisson)."""
    layers = [Linear(out_features=1), Activation(type="exp")] if family == "poisson" else []
    n_classes = 2 if task == "binary" else 1
    return ModelSpec(kind="layers", layers=layers, n_features=n_features, n_classes=n_classes, task=task)


def to_params(beta: np.ndarray, task: TaskKind, fitted: Params) -> Params:
    """Coefficients as the linear model's parameters; ``fitted`` holds the standardisation tensors."""
    beta = np.asarray(beta, dtype=np.float64)
    if task == "binary":
        weight = np.vstack([np.zeros(len(beta) - 1), beta[1:]])
        bias = np.array([0.0, beta[0]])
    else:
        weight, bias = beta[None, 1:], beta[:1]
    return {
        standardization.MEAN: fitted[standardization.MEAN],
        standardization.SCALE: fitted[standardization.SCALE],
        WEIGHT: weight.astype(np.float32),
        BIAS: bias.astype(np.float32),
    }
