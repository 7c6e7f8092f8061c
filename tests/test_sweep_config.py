"""The sweep's config, trials and election, and the reproduction's checks: pure, on small inputs."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from components.adapters.workspace import Workspace
from components.core.config import load_federation_config
from components.core.contract import ValidationSummary
from components.core.errors import ConfigError, NotReproducible
from components.core.ports import RegisteredVersion
from components.core.sweep import SweepConfig, TrialResult, apply_overrides, elect, load_sweep_config
from components.run.records import ValidationResult
from components.run.reproduction import RecordedRun, check_same_data, compare
from components.run.summary import RoundMetrics, RoundRow, RunSummary
from flows.demo import prepare_demo


def test_a_grid_runs_every_combination_in_the_order_written():
    config = SweepConfig(base="f.yaml", parameters={"training.learning_rate": [0.1, 0.01], "rounds": [1, 2, 3]})
    trials = config.trials_overrides()
    assert len(trials) == 6
    assert trials[:2] == [{"training.learning_rate": 0.1, "rounds": 1}, {"training.learning_rate": 0.1, "rounds": 2}]


def test_a_random_search_draws_the_same_trials_from_the_same_seed_within_its_ranges():
    parameters = {
        "training.learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
        "training.local_epochs": {"low": 1, "high": 3, "integer": True},
        "strategy": [{"name": "fedavg"}, {"name": "fedprox", "options": {"mu": 0.1}}],
    }
    first = SweepConfig(base="f.yaml", search="random", trials=20, seed=3, parameters=parameters)
    again = SweepConfig(base="f.yaml", search="random", trials=20, seed=3, parameters=parameters)
    other = SweepConfig(base="f.yaml", search="random", trials=20, seed=4, parameters=parameters)
    trials = first.trials_overrides()
    assert trials == again.trials_overrides() and trials != other.trials_overrides()
    rates = [t["training.learning_rate"] for t in trials]
    assert all(1e-4 <= r <= 1e-1 for r in rates) and min(rates) < 1e-2 < max(rates)  # spread over decades
    assert {t["training.local_epochs"] for t in trials} == {1, 2, 3}
    assert {t["strategy"]["name"] for t in trials} == {"fedavg", "fedprox"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"parameters": {"coordinator.bind": ["tcp://127.0.0.1:1"]}}, "a sweep changes only paths under"),
        ({"parameters": {"rounds": []}}, "has no values"),
        ({"parameters": {"rounds": {"low": 1, "high": 3}}}, "ranges are for random"),
        ({"parameters": {"rounds": [1]}, "trials": 3}, "trials is for random search"),
        ({"parameters": {"rounds": [1]}, "search": "random"}, "random search needs trials"),
        (
            {
                "parameters": {"training.learning_rate": {"low": 0, "high": 1, "log": True}},
                "search": "random",
                "trials": 2,
            },
            "low > 0",
        ),
    ],
)
def test_a_sweep_config_mistake_is_named(tmp_path, fields, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "federation.yaml", **fields}))
    with pytest.raises(ConfigError, match=message):
        load_sweep_config(path)


def test_the_base_is_relative_to_the_sweep_file(tmp_path):
    path = tmp_path / "sweeps" / "sweep.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"base": "../federation.yaml", "parameters": {"rounds": [1]}}))
    assert load_sweep_config(path).base == tmp_path / "federation.yaml"


def test_overrides_make_a_validated_federation_config(tmp_path):
    layout = prepare_demo(Workspace.at(tmp_path), parties=2, rounds=3)
    base = load_federation_config(layout.federation_config)
    config = apply_overrides(
        base, {"training.learning_rate": 0.5, "strategy.options.mu": 0.1, "strategy.name": "fedprox"}
    )
    assert (config.training.learning_rate, config.strategy.name, config.strategy.options) == (
        0.5,
        "fedprox",
        {"mu": 0.1},
    )
    assert config.parties == base.parties and base.training.learning_rate == 0.05  # the base is untouched
    with pytest.raises(ConfigError, match=r"trial training\.learning_rate=-1: training\.learning_rate: Input should"):
        apply_overrides(base, {"training.learning_rate": -1})


def _trial(index: int, status: str = "completed", **metrics: float) -> TrialResult:
    return TrialResult(index=index, run_id=f"t{index}", overrides={}, status=status, metrics=metrics)  # type: ignore[arg-type]


def test_the_best_completed_trial_is_elected_and_the_first_among_equals():
    trials = [
        _trial(1, accuracy=0.9, loss=0.3),
        _trial(2, "failed"),
        _trial(3, accuracy=0.95, loss=0.4),
        _trial(4, accuracy=0.95, loss=0.2),
    ]
    assert elect(trials, "accuracy", higher_is_better=True).index == 3
    assert elect(trials, "loss", higher_is_better=False).index == 4
    assert elect([_trial(1, "failed"), _trial(2, accuracy=float("nan"))], "accuracy", True) is None


def _summary(manifests: dict[str, str], rows: int = 100, rounds: list[RoundRow] | None = None) -> RunSummary:
    validation = {p: {"contract": "breast_cancer", "version": 1, "row_count": rows, "success": True} for p in manifests}
    return RunSummary(
        run_id="recorded",
        started_at="now",
        config={},
        manifests=manifests,
        validation=validation,
        rounds=rounds or [],
        final_metrics=RoundMetrics(loss=0.2, accuracy=0.9),
    )


def _validation(manifests: dict[str, str], rows: int = 100, version: int = 1) -> ValidationResult:
    summary = ValidationSummary(contract="breast_cancer", version=version, success=True, row_count=rows, outcomes=[])
    return ValidationResult(
        summaries={p: summary for p in manifests}, manifests={p: {"content_hash": h} for p, h in manifests.items()}
    )


def test_a_party_whose_data_or_contract_changed_is_named():
    recorded = _summary({"alpha": "sha256:aa", "beta": "sha256:bb"})
    check_same_data(recorded, _validation({"alpha": "sha256:aa", "beta": "sha256:bb"}))  # the same: no error
    with pytest.raises(
        NotReproducible, match="party beta's data changed since run recorded: manifest sha256:bb then, sha256:cc now"
    ):
        check_same_data(recorded, _validation({"alpha": "sha256:aa", "beta": "sha256:cc"}))
    with pytest.raises(NotReproducible, match=r"party alpha validated breast_cancer@v1 .* breast_cancer@v2"):
        check_same_data(recorded, _validation({"alpha": "sha256:aa", "beta": "sha256:bb"}, version=2))
    with pytest.raises(NotReproducible, match="party beta took part in run recorded but did not validate"):
        check_same_data(recorded, _validation({"alpha": "sha256:aa"}))


def test_the_comparison_says_what_differs_beyond_the_tolerance():
    row = RoundRow(
        round=1,
        participants=["alpha"],
        metrics=RoundMetrics(loss=0.2, accuracy=0.9),
        bytes_up=1,
        bytes_down=1,
        seconds=1.0,
    )
    recorded = RecordedRun("recorded", None, _summary({"alpha": "h"}, rounds=[row]), {"w": np.array([1.0, 2.0])})  # type: ignore[arg-type]
    version = RegisteredVersion(name="m", version=3)
    same = _summary({"alpha": "h"}, rounds=[row]).model_copy(update={"run_id": "rerun"})
    report = compare(recorded, same, {"w": np.array([1.0, 2.0 + 5e-7])}, version, 1e-6)
    assert report.matches and report.parameters_max_difference == pytest.approx(5e-7)
    report = compare(recorded, same, {"w": np.array([1.0, 2.001])}, version, 1e-6)
    assert report.mismatches == ["model parameters differ by up to 0.001"]
    worse = same.model_copy(update={"final_metrics": RoundMetrics(loss=0.2, accuracy=0.8)})
    assert compare(recorded, worse, {"w": np.array([1.0, 2.0])}, version, 1e-6).mismatches == [
        "final accuracy 0.8 against 0.9 recorded"
    ]
