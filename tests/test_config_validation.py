"""A federation config is validated whole when it is loaded: strategy (wrappers recursively), valuation, promotion.

Each mistake is one line naming its field path and the valid choices; ``consortia run`` stops on it before
any party, Prefect or MLflow is involved.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.core.config import load_federation_config
from components.core.errors import ConfigError
from components.core.strategies import build_strategy, strategy_names
from components.core.strategies.registry import check_strategy, strategy_options

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ", ".join(strategy_names())


def federation(**changes: Any) -> dict[str, Any]:
    """A valid federation config (as YAML would hold it) with ``changes`` applied at the top level."""
    config: dict[str, Any] = {
        "name": "clinics",
        "contract": {"name": "breast_cancer", "version": 1},
        "coordinator": {"bind": "tcp://127.0.0.1:5555", "secret_key_file": "keys/coordinator.key_secret"},
        "parties": [{"name": name, "public_key": name[0] * 40} for name in ("alpha", "beta", "gamma")],
        "promotion": {"model_name": "clinics-model"},
    }
    config.update(changes)
    return config


def write(tmp_path: Path, config: dict[str, Any], name: str = "federation.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def mistakes(tmp_path: Path, **changes: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_federation_config(write(tmp_path, federation(**changes)))
    return str(caught.value)


def test_the_base_config_is_valid(tmp_path):
    config = load_federation_config(write(tmp_path, federation()))
    assert (config.strategy.name, config.valuation.method, config.promotion.metric) == ("fedavg", "loo", None)


def test_unknown_strategy_names_the_choices(tmp_path):
    message = mistakes(tmp_path, strategy={"name": "fedavgg"})
    assert f"strategy.name: 'fedavgg' is not a strategy; choose one of [{STRATEGIES}]" in message


def test_misspelt_option_names_the_valid_ones(tmp_path):
    message = mistakes(tmp_path, strategy={"name": "trimmed_mean", "options": {"bta": 0.1}})
    assert "strategy.options.bta: unknown option of 'trimmed_mean'; valid options: beta" in message
    message = mistakes(tmp_path, strategy={"name": "median", "options": {"beta": 0.1}})
    assert "strategy.options.beta: unknown option of 'median'; 'median' takes no options" in message


def test_wrapper_options_include_inner_and_inner_options(tmp_path):
    message = mistakes(tmp_path, strategy={"name": "clipping", "options": {"max_norm": 1.0, "max_nrom": 2.0}})
    assert "strategy.options.max_nrom: unknown option of 'clipping'; valid options: max_norm, inner, inner_options" in (
        message
    )
    assert strategy_options("bucketing") == ["bucket_size", "seed", "inner", "inner_options"]


def test_inner_options_are_checked_against_the_inner_strategy(tmp_path):
    options = {"inner": "fedadam", "inner_options": {"server_lr": 0.1}, "max_norm": 1.0}
    message = mistakes(tmp_path, strategy={"name": "clipping", "options": options})
    assert (
        "strategy.options.inner_options.server_lr: unknown option of 'fedadam'; "
        "valid options: server_learning_rate, beta1, beta2, tau"
    ) in message


def test_inner_strategies_are_checked_at_any_depth(tmp_path):
    trimmed = {"inner": "trimmed_mean", "inner_options": {"bta": 0.1}, "bucket_size": 2}
    message = mistakes(
        tmp_path,
        strategy={"name": "clipping", "options": {"inner": "bucketing", "inner_options": trimmed, "max_norm": 1.0}},
    )
    assert "strategy.options.inner_options.inner_options.bta: unknown option of 'trimmed_mean'" in message
    message = mistakes(tmp_path, strategy={"name": "clipping", "options": {"inner": "fedadamm", "max_norm": 1.0}})
    assert f"strategy.options.inner: 'fedadamm' is not a strategy; choose one of [{STRATEGIES}]" in message


def test_option_values_are_checked_by_type_and_by_building_the_strategy(tmp_path):
    message = mistakes(tmp_path, strategy={"name": "trimmed_mean", "options": {"beta": "lots"}})
    assert "strategy.options.beta: Input should be a valid number" in message
    message = mistakes(tmp_path, strategy={"name": "trimmed_mean", "options": {"beta": 0.7}})
    assert "strategy.options.beta: invalid for 'trimmed_mean': beta must be in [0, 0.5), got 0.7" in message
    message = mistakes(tmp_path, strategy={"name": "bucketing", "options": {"inner": "median", "bucket_size": 0}})
    assert "strategy.options.bucket_size: invalid for 'bucketing': bucket_size must be at least 1" in message
    message = mistakes(tmp_path, strategy={"name": "clipping", "options": {"inner": "fedprox"}})
    assert "strategy.options.max_norm: required option of 'clipping'" in message


def test_unknown_valuation_method_names_the_choices(tmp_path):
    message = mistakes(tmp_path, valuation={"method": "shapley"})
    assert (
        "valuation.method: 'shapley' is not a valuation method; choose one of [exact, gtg, tmc, loo, cgsv]" in message
    )


def test_valuation_options_are_checked_against_the_method(tmp_path):
    message = mistakes(tmp_path, valuation={"method": "gtg", "options": {"tolerence": 0.1, "max_permutations": 0}})
    assert "valuation.options.tolerence: unknown option of 'gtg'; valid options: skip_below," in message
    assert "valuation.options.max_permutations: Input should be greater than or equal to 1" in message
    message = mistakes(tmp_path, valuation={"method": "cgsv", "options": {"workers": 2}})
    assert "valuation.options.workers: unknown option of 'cgsv'; 'cgsv' takes no options" in message


def test_exact_shapley_over_its_party_limit_is_refused_before_training(tmp_path):
    message = mistakes(tmp_path, valuation={"method": "exact", "options": {"max_parties": 2}})
    assert "valuation.options.max_parties: exact Shapley refuses rounds of more than max_parties=2" in message


CHOICES = "choose one of [accuracy, roc_auc, loss, rmse, mae, r2]"


def test_metrics_must_be_ones_the_run_produces(tmp_path):
    message = mistakes(tmp_path, promotion={"model_name": "m", "metric": "f1"})
    assert f"promotion.metric: 'f1' is not a metric the run produces; {CHOICES}" in message
    message = mistakes(tmp_path, valuation={"method": "loo", "metric": "acc"})
    assert f"valuation.metric: 'acc' is not a metric the run produces; {CHOICES}" in message


def test_every_mistake_in_a_file_is_reported_one_line_each(tmp_path):
    message = mistakes(
        tmp_path,
        strategy={"name": "trimmed_mean", "options": {"bta": 0.1}},
        valuation={"method": "shapley"},
        promotion={"model_name": "m", "metric": "f1"},
        rounds=0,
    )
    lines = message.splitlines()
    assert lines[0].endswith("4 mistakes")
    assert sorted(line.strip().split(":")[0] for line in lines[1:]) == [
        "promotion.metric",
        "rounds",
        "strategy.options.bta",
        "valuation.method",
    ]


def test_a_valid_chain_of_wrappers_loads_typed_and_builds(tmp_path):
    fedadam = {"server_learning_rate": "1e-3", "beta1": 0.8}  # YAML reads 1e-3 (no dot) as a string
    clipping = {"inner": "fedadam", "inner_options": fedadam, "max_norm": 2}
    dp = {"inner": "clipping", "inner_options": clipping, "clip_norm": 1.0, "noise_multiplier": 0.5, "seed": 3}
    config = load_federation_config(write(tmp_path, federation(strategy={"name": "DP", "options": dp})))
    assert config.strategy.name == "dp"
    assert config.strategy.options["inner_options"]["inner_options"]["server_learning_rate"] == 0.001
    strategy = build_strategy(config.strategy.name, **config.strategy.options)
    assert (strategy.name, strategy.inner.name, strategy.inner.inner.name) == ("dp", "clipping", "fedadam")
    assert strategy.inner.inner.server_learning_rate == 0.001 and strategy.noise_multiplier == 0.5


def test_check_strategy_and_build_strategy_keep_their_contracts():
    assert check_strategy("trimmed_mean", {"beta": 0.1}).problems == []
    assert [p.loc for p in check_strategy("fedavgg", {}).problems] == [("name",)]
    with pytest.raises(ValueError, match="unknown strategy"):
        build_strategy("fedavgg")
    with pytest.raises(TypeError):
        build_strategy("median", beta=0.1)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "400", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "flows", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


def _no_stores(workspace: Path, *made_by_the_test: str) -> None:
    for store in ("mlflow", "federation.db", "prefect", "checkpoints", "runs", "metadata"):
        if store not in made_by_the_test:
            assert not (workspace / store).exists(), store


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"strategy": {"name": "fedavgg"}}, "strategy.name: 'fedavgg' is not a strategy; choose one of ["),
        (
            {"strategy": {"name": "trimmed_mean", "options": {"bta": 0.1}}},
            "strategy.options.bta: unknown option of 'trimmed_mean'; valid options: beta",
        ),
        (
            {"valuation": {"method": "shapley"}},
            "valuation.method: 'shapley' is not a valuation method; choose one of [exact, gtg, tmc, loo, cgsv]",
        ),
    ],
    ids=["strategy", "option", "valuation"],
)
def test_run_stops_on_a_bad_config_before_anything_starts(tmp_path, change, expected):
    bad = write(tmp_path, federation(**change), "bad.yaml")
    workspace = tmp_path / "tmp"
    result = _cli("run", str(bad), "--workspace", str(workspace), cwd=tmp_path)
    output = " ".join((result.stdout + result.stderr).split())  # undo the console's line wrapping
    assert result.returncode != 0
    assert expected in output and "Traceback" not in output
    _no_stores(workspace)


def test_resume_stops_on_an_invalid_frozen_config(tmp_path):
    workspace = tmp_path / "tmp"
    frozen = workspace / "checkpoints" / "r1" / "federation.json"
    frozen.parent.mkdir(parents=True)
    frozen.write_text(json.dumps(federation(valuation={"method": "shapley"})))
    result = _cli("resume", "r1", "--workspace", str(workspace), cwd=tmp_path)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "cannot resume" in output and "valuation.method: 'shapley' is not a valuation method" in output
    assert "Traceback" not in output
    _no_stores(workspace, "checkpoints")
