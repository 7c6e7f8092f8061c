"""Local training options: the defaults are the SGD of before, and each option changes the result measurably."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from components.core import standardization
from components.core.config import TrainingSpec
from components.core.errors import ConfigError, ContractError
from components.core.model_spec import ModelSpec
from components.core.params import flatten
from components.ml.model import build_model, get_params, set_params
from components.ml.training import predict, train_local

SPEC = ModelSpec(n_features=4, n_classes=2, hidden=[8], seed=1)


def rows(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def start(spec: ModelSpec = SPEC, x: np.ndarray | None = None):
    return standardization.fit_rows(get_params(build_model(spec)), rows()[0] if x is None else x)


def train(training: TrainingSpec, round_number: int = 1, spec: ModelSpec = SPEC, data=None):
    x, y = data if data is not None else rows()
    return train_local(spec, start(spec, x), x, y, training, round_number)


def distance(a, b) -> float:
    return float(np.linalg.norm(flatten(a) - flatten(b)))


def test_the_defaults_are_plain_sgd_with_momentum_as_before():
    x, y = rows()
    params, result = train(TrainingSpec())
    model = build_model(SPEC)
    set_params(model, start())
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0 * 100_003 + 1)
    xt, yt = torch.tensor(x), torch.tensor(y)
    order = torch.randperm(len(xt), generator=generator)
    for begin in range(0, len(xt), 32):
        batch = order[begin : begin + 32]
        optimiser.zero_grad()
        nn.CrossEntropyLoss()(model(xt[batch]), yt[batch]).backward()
        optimiser.step()
    reference = get_params(model)
    assert all(np.array_equal(params[k], reference[k]) for k in params)
    assert result.learning_rate == 0.05
    assert TrainingSpec().model_dump(exclude_unset=True) == {}  # nothing new is sent unless set


def test_each_optimizer_gives_a_different_model():
    results = {name: train(TrainingSpec(optimizer=name, weight_decay=0.05))[0] for name in ("sgd", "adam", "adamw")}
    assert distance(results["sgd"], results["adam"]) > 0.1
    assert distance(results["adam"], results["adamw"]) > 1e-3  # coupled vs decoupled decay
    again = train(TrainingSpec(optimizer="adam", weight_decay=0.05))[0]
    assert distance(results["adam"], again) == 0.0  # still reproducible


def test_weight_decay_shrinks_the_weights():
    free = train(TrainingSpec(local_epochs=5))[0]
    decayed = train(TrainingSpec(local_epochs=5, weight_decay=0.1))[0]
    assert np.linalg.norm(decayed["body.0.weight"]) < 0.9 * np.linalg.norm(free["body.0.weight"])


def test_learning_rate_schedules_run_over_rounds():
    step = TrainingSpec(learning_rate=0.1, lr_schedule="step", lr_step_rounds=2, lr_gamma=0.5)
    assert [step.learning_rate_at(r) for r in (0, 1, 2, 3, 4, 5)] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]
    cosine = TrainingSpec(learning_rate=0.1, lr_schedule="cosine", lr_total_rounds=5, lr_min=0.01)
    rates = [cosine.learning_rate_at(r) for r in range(1, 8)]
    assert math.isclose(rates[0], 0.1) and math.isclose(rates[2], 0.055) and math.isclose(rates[4], 0.01)
    assert rates[5] == rates[6] == pytest.approx(0.01)  # past the span it stays at lr_min
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
    assert TrainingSpec().learning_rate_at(50) == 0.05


def test_a_scheduled_round_trains_at_its_rate():
    step = TrainingSpec(learning_rate=0.1, lr_schedule="step", lr_step_rounds=1, lr_gamma=0.1)
    scheduled, result = train(step, round_number=3)
    assert math.isclose(result.learning_rate, 0.001)
    constant = train(TrainingSpec(learning_rate=0.1), round_number=3)[0]
    by_hand = train(TrainingSpec(learning_rate=0.1 * 0.1**2), round_number=3)[0]
    assert distance(scheduled, by_hand) < 1e-6  # the schedule only sets the round's rate
    assert distance(scheduled, start()) < 0.1 * distance(constant, start())


def test_cosine_needs_the_rounds_it_spans():
    with pytest.raises(ValidationError, match="lr_schedule 'cosine' needs lr_total_rounds"):
        TrainingSpec(lr_schedule="cosine")
    with pytest.raises(ValidationError, match="lr_min=1.0 is above learning_rate"):
        TrainingSpec(lr_schedule="cosine", lr_total_rounds=3, lr_min=1.0)
    with pytest.raises(ValidationError, match="optimizer"):
        TrainingSpec(optimizer="lbfgs")


def test_class_weights_move_predictions_towards_the_heavy_class():
    x, y = rows(300)
    y = np.where(np.random.default_rng(3).random(len(y)) < 0.8, 0, y)  # class 1 rare
    plain = train(TrainingSpec(local_epochs=3), data=(x, y))[0]
    weighted = train(TrainingSpec(local_epochs=3, class_weights=[1.0, 8.0]), data=(x, y))[0]
    share = {
        name: float((predict(SPEC, p, x).argmax(axis=1) == 1).mean()) for name, p in (("plain", plain), ("w", weighted))
    }
    assert share["w"] > share["plain"] + 0.15, share


def test_class_weights_must_fit_the_task():
    with pytest.raises(ConfigError, match="class_weights has 3 weights, the model has 2 classes"):
        train(TrainingSpec(class_weights=[1.0, 2.0, 3.0]))
    regression = ModelSpec(n_features=4, n_classes=1, task="regression")
    x = rows()[0]
    with pytest.raises(ConfigError, match="class_weights are for classification"):
        train(TrainingSpec(class_weights=[1.0]), spec=regression, data=(x, x[:, 0]))
    with pytest.raises(ValidationError, match="class_weights must be finite, non-negative"):
        TrainingSpec(class_weights=[-1.0, 1.0])


def test_gradient_clipping_bounds_every_step():
    no_momentum = {"momentum": 0.0, "learning_rate": 0.5}
    free = train(TrainingSpec(**no_momentum))[0]
    clipped = train(TrainingSpec(**no_momentum, grad_clip_norm=0.01))[0]
    steps = math.ceil(150 / 32)
    assert distance(clipped, start()) <= 0.5 * 0.01 * steps + 1e-6  # each step moves at most lr * clip
    assert distance(free, start()) > 10 * distance(clipped, start())


def test_labels_the_task_cannot_take_are_a_contract_error():
    x, _ = rows(10)
    with pytest.raises(ContractError, match=r"outside 0..1"):
        train(TrainingSpec(), data=(x, np.arange(10)))
    with pytest.raises(ContractError, match="class indices"):
        train(TrainingSpec(), data=(x, np.full(10, 0.5)))


def test_dropout_is_seeded_so_a_round_is_reproducible():
    spec = ModelSpec(
        kind="layers",
        n_features=4,
        n_classes=2,
        layers=[{"type": "linear", "out_features": 16}, {"type": "relu"}, {"type": "dropout", "p": 0.5}],
    )
    a = train(TrainingSpec(), spec=spec)[0]
    b = train(TrainingSpec(), spec=spec)[0]
    c = train(TrainingSpec(seed=1), spec=spec)[0]
    assert distance(a, b) == 0.0 and distance(a, c) > 0
    state = torch.random.get_rng_state()
    train(TrainingSpec(), spec=spec)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's generator is left alone
