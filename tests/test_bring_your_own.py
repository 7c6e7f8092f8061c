"""Bring your own model, data and task, through the real flow: `consortia run` and `party-agent run` processes.

1. A plug-in model package written here, pip-installed into a folder that only the coordinator and the
   parties that "have it" get on their PYTHONPATH: a run trains it and registers it; then a party without it,
   and then one with another version, refuses at validation, and the run fails naming that party and why,
   before any round.
2. String labels: breast-cancer rows labelled "benign"/"malignant", a contract drafted by `consortia contract
   init`, and the registered model, loaded as the README says, predicts columns named after the classes.
3. A CSV the project has never seen: contract, keys and party configs made by the CLIs (only the
   federation.yaml is written, as its engineer would), then a full run on them, none of them edited.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from components.adapters.contracts import load_contract
from components.adapters.workspace import Workspace
from components.run.summary import RunSummary
from flows.demo import free_port
from flows.processes import PartyProcesses, stop_process_groups
from tests.federation_helpers import consortia_command, consortia_env, make_federation
from tests.plugin_package import install_plugin, on_pythonpath, write_plugin_package

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]
PARTY_AGENT = str(Path(sys.executable).parent / "party-agent")
WIDE = {"COLUMNS": "250"}  # rich wraps at 80 columns without a terminal; messages are asserted unwrapped too


class Parties(PartyProcesses):
    """``PartyProcesses`` with each party's changes to this environment (which plug-ins and contracts it has)."""

    def __init__(self, configs: dict[str, Path], log_dir: Path, envs: dict[str, dict[str, str]]) -> None:
        super().__init__(configs, log_dir)
        self.envs = envs

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"party-{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "party_agent", "run", "--config", str(self.configs[name])],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self.envs[name]},
            )
        return self.processes[name]

    def restart(self, name: str, env: dict[str, str]) -> None:
        stop_process_groups([self.processes[name]])
        self.envs[name] = env
        self.start(name)

    def log(self, name: str) -> str:
        return (self.log_dir / f"party-{name}.log").read_text(errors="replace")


def consortia_run(config: Path, workspace: Path, run_id: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``consortia run CONFIG --run-id RUN_ID`` in its own process with ``env`` changed (prints how long it took)."""
    started = time.perf_counter()
    done = subprocess.run(
        consortia_command("run", str(config), "--run-id", run_id, workspace=workspace),
        capture_output=True,
        text=True,
        timeout=300,
        env={**consortia_env(workspace), **env, **WIDE},
    )
    print(f"consortia run {run_id}: {time.perf_counter() - started:.1f} s, exit {done.returncode}")
    return done


def cli(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``command`` with ``env`` changed; it must succeed."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env={**os.environ, **env, **WIDE})
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def flat(text: str) -> str:
    return " ".join(text.split())


def champion_version(workspace: Workspace, model_name: str) -> int:
    import mlflow

    return int(mlflow.MlflowClient(workspace.tracking_uri).get_model_version_by_alias(model_name, "champion").version)


# ---- 1. a plug-in model ----


def test_a_plugin_model_trains_end_to_end_and_a_party_without_it_refuses_before_training(tmp_path):
    sources = tmp_path / "src"
    site = install_plugin(
        write_plugin_package(sources / "v1", "consortia-tiny-mlp", "0.1.0", "tiny-mlp"), tmp_path / "site"
    )
    newer = install_plugin(
        write_plugin_package(sources / "v2", "consortia-tiny-mlp", "0.2.0", "tiny-mlp"), tmp_path / "new"
    )
    plugin = {"name": "tiny-mlp", "version": "0.1.0", "options": {"hidden": 6}}
    workspace, layout = make_federation(
        tmp_path / "ws",
        parties=2,
        rounds=1,
        model={"kind": "plugin", "plugin": plugin, "seed": 0},
        promotion={"model_name": "consortia-tiny-mlp"},
        join_timeout_s=60,
    )
    has_it = on_pythonpath(site)
    with Parties(layout.party_configs, workspace.logs, {"alpha": has_it, "beta": has_it}) as parties:
        trained = consortia_run(layout.federation_config, workspace.root, "with-plugin", has_it)
        assert trained.returncode == 0, trained.stdout + trained.stderr
        summary = RunSummary.read(workspace.summary_path("with-plugin"))
        print(f"with-plugin: held-out accuracy {summary.final_metrics.accuracy:.3f}")
        assert summary.status == "completed"
        assert summary.config["model"]["kind"] == "plugin" and summary.config["model"]["plugin"] == plugin
        assert [r.round for r in summary.rounds] == [1]
        assert sorted(summary.rounds[0].participants) == ["alpha", "beta"]
        assert summary.final_metrics.accuracy > 0.8
        assert summary.promotion.decision == "promoted" and summary.promotion.version == 1
        assert champion_version(workspace, "consortia-tiny-mlp") == 1

        refused = {}
        for run_id, beta_env in (("beta-lacks-it", {}), ("beta-has-0.2.0", on_pythonpath(newer))):
            parties.restart("beta", beta_env)  # the coordinator and alpha keep 0.1.0
            refused[run_id] = consortia_run(layout.federation_config, workspace.root, run_id, has_it)
        alpha_log, beta_log = parties.log("alpha"), parties.log("beta")

    why = {
        "beta-lacks-it": "beta: plug-in model 'tiny-mlp' is not installed here",
        "beta-has-0.2.0": "beta: plug-in model 'tiny-mlp' is version 0.2.0 here, the federation asks for 0.1.0",
    }
    for run_id, done in refused.items():
        output = flat(done.stdout + done.stderr)
        assert done.returncode == 1, output
        assert f"run {run_id} failed: 1 party cannot build the plug-in tiny-mlp==0.1.0: {why[run_id]}" in output
        assert "alpha:" not in output  # alpha has it and validated
        assert why[run_id].removeprefix("beta: ") in beta_log  # the party's own log says why it refused
        failed = RunSummary.read(workspace.summary_path(run_id))
        assert failed.status == "failed"
        assert failed.error.startswith("ConfigError: 1 party cannot build the plug-in") and why[run_id] in failed.error
        assert failed.rounds == [] and failed.promotion is None and failed.contributions == {}
    assert alpha_log.count("trained on") == 1  # the first run's only round: nothing trained after a refusal
    assert champion_version(workspace, "consortia-tiny-mlp") == 1


# ---- a federation made with the command-line tools ----


def build_federation(
    project: Path,
    name: str,
    contract: str,
    party_frames: dict[str, pd.DataFrame],
    holdout: pd.DataFrame,
    env: dict[str, str],
    rounds: int = 2,
    local_epochs: int = 1,
) -> tuple[Path, dict[str, Path]]:
    """Party CSVs, then `consortia keys`, `party-agent init` per party, and the federation.yaml an engineer writes."""
    port = free_port()
    keys = cli([sys.executable, "-m", "flows", "keys", "coordinator", "--out", str(project / "coordinator")], env)
    coordinator_key = keys.stdout.strip().splitlines()[-1]
    holdout.to_csv(project / "coordinator" / "holdout.csv", index=False)
    configs, entries = {}, []
    for party, frame in party_frames.items():
        data = project / party / "train.csv"
        data.parent.mkdir(parents=True)
        frame.to_csv(data, index=False)
        command = [PARTY_AGENT, "init", "--name", party, "--data", str(data), "--contract", contract]
        command += ["--coordinator", f"tcp://127.0.0.1:{port}", "--coordinator-key", coordinator_key]
        public_key = cli(command, env).stdout.strip().splitlines()[-1]
        configs[party] = project / party / "party.yaml"
        entries.append({"name": party, "public_key": public_key})
    federation = {
        "name": name,
        "contract": {"name": contract, "version": 1},
        "model": {"hidden": [16], "seed": 0},
        "training": {"local_epochs": local_epochs},
        "rounds": rounds,
        "min_parties": len(entries),
        "round_timeout_s": 60,
        "join_timeout_s": 60,
        "holdout": "coordinator/holdout.csv",
        "coordinator": {"bind": f"tcp://127.0.0.1:{port}", "secret_key_file": "coordinator/coordinator.key_secret"},
        "parties": entries,
        "promotion": {"model_name": name},
    }
    path = project / "federation.yaml"
    path.write_text(yaml.safe_dump(federation, sort_keys=False))
    return path, configs


def contract_init(sample: Path, target: str, name: str, contracts: Path, env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "flows", "contract", "init", "--from", str(sample), "--target", target]
    return flat(cli([*command, "--name", name, "--out", str(contracts)], env).stdout)


def split_between(frame: pd.DataFrame, parties: list[str], seed: int) -> dict[str, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    return {party: frame.iloc[rows] for party, rows in zip(parties, np.array_split(order, len(parties)), strict=True)}


# ---- 2. string labels ----


def test_string_labels_train_and_the_registered_model_predicts_class_names(tmp_path):
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" ", "_")).rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map({0: "malignant", 1: "benign"})
    features = [c for c in frame.columns if c != "diagnosis"]
    project, contracts = tmp_path / "project", tmp_path / "contracts"
    project.mkdir()
    env = {"CONSORTIA_CONTRACTS": str(contracts)}
    sample = project / "sample.csv"
    frame.to_csv(sample, index=False)
    printed = contract_init(sample, "diagnosis", "bc_text", contracts, env)
    assert "classes 0=benign, 1=malignant" in printed and "task binary" in printed
    contract = load_contract("bc_text", root=contracts)
    assert contract.dtypes["diagnosis"] == "string" and contract.classes == ["benign", "malignant"]

    train, holdout = train_test_split(frame, test_size=0.2, random_state=0, stratify=frame["diagnosis"])
    config, configs = build_federation(
        project, "bc-text", "bc_text", split_between(train, ["alpha", "beta"], 0), holdout, env
    )
    workspace = Workspace.at(tmp_path / "ws")
    with Parties(configs, workspace.logs, {party: env for party in configs}):
        done = consortia_run(config, workspace.root, "bc-text-run", env)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = RunSummary.read(workspace.summary_path("bc-text-run"))
    print(f"bc-text-run: held-out accuracy {summary.final_metrics.accuracy:.3f}")
    assert summary.status == "completed" and [r.round for r in summary.rounds] == [1, 2]
    assert summary.final_metrics.accuracy > 0.85 and summary.final_metrics.roc_auc > 0.9
    assert summary.promotion.decision == "promoted" and champion_version(workspace, "bc-text") == 1

    import mlflow

    mlflow.set_tracking_uri(workspace.tracking_uri)  # the README's snippet, on this workspace
    model = mlflow.pyfunc.load_model("models:/bc-text@champion")
    features_frame = pd.read_csv(project / "coordinator" / "holdout.csv").drop(columns=["diagnosis"])
    probabilities = model.predict(features_frame)
    assert list(probabilities.columns) == ["benign", "malignant"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    predicted = probabilities.idxmax(axis=1).to_numpy()
    assert (predicted == holdout["diagnosis"].to_numpy()).mean() > 0.85
    reordered = features_frame[list(reversed(features))]
    pd.testing.assert_frame_equal(model.predict(reordered), probabilities)


# ---- 3. a CSV the project has never seen ----


def greenhouse_frame(rows: int = 600, seed: int = 3) -> pd.DataFrame:
    """Synthetic sensor readings and a yield class 0, 1 or 2 that depends on them (plus noise)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "soil_moisture": rng.uniform(0.1, 0.6, rows).round(3),
            "air_temperature_c": rng.normal(24, 4, rows).round(1),
            "light_hours": rng.uniform(6, 16, rows).round(2),
            "co2_ppm": rng.integers(380, 1200, rows),
        }
    )
    score = (
        6 * (frame["soil_moisture"] - 0.35)
        + 0.3 * (frame["light_hours"] - 11)
        + 0.002 * (frame["co2_ppm"] - 790)
        - 0.15 * (frame["air_temperature_c"] - 24).abs()
        + rng.normal(0, 0.3, rows)
    )
    frame["yield_class"] = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    return frame


def digests(paths: list[Path]) -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def test_contract_init_on_an_unseen_csv_then_a_full_run_with_no_file_edited(tmp_path):
    frame = greenhouse_frame()
    project, contracts = tmp_path / "project", tmp_path / "contracts"
    project.mkdir()
    env = {"CONSORTIA_CONTRACTS": str(contracts)}
    sample = project / "greenhouse.csv"
    frame.to_csv(sample, index=False)
    printed = contract_init(sample, "yield_class", "greenhouse", contracts, env)
    assert "task multiclass" in printed and "passes all" in printed
    contract = load_contract("greenhouse", root=contracts)
    assert contract.features == ["soil_moisture", "air_temperature_c", "light_hours", "co2_ppm"]
    assert contract.dtypes["co2_ppm"] == "int64" and contract.classes == [0, 1, 2]

    holdout = frame.sample(frac=0.2, random_state=0)
    parties = split_between(frame.drop(holdout.index), ["north", "south", "east"], 1)
    config, configs = build_federation(project, "greenhouse", "greenhouse", parties, holdout, env, local_epochs=5)
    generated = digests([*sorted((contracts / "greenhouse" / "v1").iterdir()), *configs.values()])
    workspace = Workspace.at(tmp_path / "ws")
    with Parties(configs, workspace.logs, {party: env for party in configs}):
        done = consortia_run(config, workspace.root, "greenhouse-run", env)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = RunSummary.read(workspace.summary_path("greenhouse-run"))
    print(f"greenhouse-run: held-out accuracy {summary.final_metrics.accuracy:.3f}")
    assert summary.status == "completed" and [r.round for r in summary.rounds] == [1, 2]
    assert all(sorted(r.participants) == ["east", "north", "south"] for r in summary.rounds)
    assert sorted(summary.validation) == ["east", "north", "south"]
    assert all(v["success"] for v in summary.validation.values())
    assert summary.final_metrics.accuracy > 0.6  # three balanced classes: chance is 1/3
    assert summary.promotion.decision == "promoted" and champion_version(workspace, "greenhouse") == 1
    assert "final held-out accuracy" in done.stdout
    assert digests(list(generated)) == generated  # the run read the generated files as they were written
