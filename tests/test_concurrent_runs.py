"""Two federations at once on overlapping parties: {alpha, beta} and {beta, gamma}, two coordinators on two
ports (two keys), one workspace, beta's one agent serving both. Real party processes, the real CLI."""

from __future__ import annotations

import numpy as np
import pytest

from components.adapters.checkpoints import RunCheckpoints, load_arrays
from components.adapters.transport import read_keypair, write_keypair
from components.core.config import CoordinatorConfig, FederationConfig, dump_yaml, load_federation_config
from components.run.summary import RunSummary
from flows.demo import free_port
from flows.processes import PartyProcesses
from party_agent.config import CoordinatorAddress, load_party_config, requests_folder
from party_agent.plans import decide_by_person, list_requests, load_policy
from tests.federation_helpers import make_federation, start_consortia, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]
ROUNDS = 3
TRAINING = {"local_epochs": 30, "batch_size": 8, "learning_rate": 0.01, "momentum": 0.0}


def two_federations(root, workspace, layout) -> tuple[dict[str, FederationConfig], dict, dict]:
    """The demo's coordinator runs {alpha, beta}; a second coordinator (own port, own key) runs {beta, gamma}.
    beta serves both from one agent, at most one run's request at a time, and holds every plan for its owner;
    ``beta-ab`` and ``beta-bc`` are beta as two agents that each serve one coordinator (for the runs alone)."""
    first = load_federation_config(layout.federation_config)
    alpha, beta, gamma = first.parties
    _, secret = write_keypair(workspace.root / "coordinator" / "keys-bc", "coordinator")
    keys = {"ab": read_keypair(first.coordinator.secret_key_file).public, "bc": read_keypair(secret).public}
    second = f"tcp://127.0.0.1:{free_port()}"
    configs = {
        "ab": first.model_copy(update={"parties": [alpha, beta]}),
        "bc": first.model_copy(
            update={
                "name": "breast-cancer-bc",
                "parties": [beta, gamma],
                "coordinator": CoordinatorConfig(bind=second, secret_key_file=secret),
                "promotion": first.promotion.model_copy(update={"model_name": "consortia-bc"}),
            }
        ),
    }
    party_configs = dict(layout.party_configs)
    serves = {alpha.name: ("ab",), beta.name: ("ab", "bc"), gamma.name: ("bc",)}
    for name, federations in serves.items():
        party = load_party_config(layout.party_configs[name])
        policy = load_policy(party.policy)
        assert policy is not None and party.policy is not None
        policy = policy.model_copy(
            update={
                "coordinators": [keys[f] for f in federations],
                "federations": [configs[f].name for f in federations],
            }
        )
        if name == beta.name:
            policy = policy.model_copy(update={"max_concurrent_runs": 1, "approval": "manual"})
            folder = layout.party_configs[name].parent
            for key in federations:  # beta as one agent per coordinator: its own plans and audit log each
                alone = party.model_copy(
                    update={
                        "coordinator": configs[key].coordinator.bind,
                        "coordinator_public_key": keys[key],
                        "requests_dir": folder / f"requests-{key}",
                        "audit_log": folder / f"audit-{key}.jsonl",
                        "wire_log": None,
                    }
                )
                party_configs[f"{name}-{key}"] = dump_yaml(alone, folder / f"party-{key}.yaml")
            party = party.model_copy(
                update={"coordinators": [CoordinatorAddress(address=second, public_key=keys["bc"])]}
            )
        elif name == gamma.name:
            party = party.model_copy(update={"coordinator": second, "coordinator_public_key": keys["bc"]})
        dump_yaml(policy, party.policy)
        dump_yaml(party, layout.party_configs[name])
    paths = {key: dump_yaml(config, root / f"{key}.yaml") for key, config in configs.items()}
    return configs, paths, party_configs


def run_both(paths, workspace, logs, when: str, held: dict) -> None:
    """Start both coordinators at once, approve their plans at beta once both wait there, wait for both."""
    started = {
        key: start_consortia(
            "run", str(path), "--run-id", f"{key}-{when}", workspace=workspace.root, log=logs / f"{key}-{when}.log"
        )
        for key, path in paths.items()
    }

    def all_waiting() -> bool:
        return all(runs <= {r.run_id for r in list_requests(folder, "pending")} for folder, runs in held.items())

    wait_until(all_waiting, 300, f"the plans of {sorted(set().union(*held.values()))}")
    for folder, runs in held.items():
        for run_id in sorted(runs):
            decide_by_person(folder, run_id, approve=True, reason="test: approved")
    for key, process in started.items():
        assert process.wait(timeout=400) == 0, (logs / f"{key}-{when}.log").read_text()[-3000:]


def test_two_concurrent_runs_on_overlapping_parties_end_with_the_models_each_run_ends_with_alone(tmp_path):
    workspace, layout = make_federation(
        tmp_path / "ws", parties=3, rounds=ROUNDS, min_parties=2, round_timeout_s=120, training=TRAINING
    )
    configs, paths, party_configs = two_federations(tmp_path, workspace, layout)
    alpha, beta, gamma = (p.name for p in load_federation_config(layout.federation_config).parties)
    folders = {name: requests_folder(load_party_config(path)) for name, path in party_configs.items()}
    logs = tmp_path / "logs"
    logs.mkdir()
    others = {name: party_configs[name] for name in (alpha, gamma)}
    with PartyProcesses(others, workspace.logs) as parties:
        alone = {f"{beta}-{key}": party_configs[f"{beta}-{key}"] for key in ("ab", "bc")}
        with PartyProcesses(alone, workspace.logs):  # each run alone: no party serves both
            run_both(paths, workspace, logs, "alone", {folders[f"{beta}-{k}"]: {f"{k}-alone"} for k in ("ab", "bc")})
        with PartyProcesses({beta: party_configs[beta]}, workspace.logs) as shared:  # one beta serves both
            run_both(paths, workspace, logs, "together", {folders[beta]: {"ab-together", "bc-together"}})
            assert not shared.dead()
        assert not parties.dead()
    beta_log = (workspace.logs / f"party-{beta}.log").read_text()
    assert "waits its turn" in beta_log  # one run's request queued behind the other's at beta, none refused
    assert "refused" not in beta_log
    for run in ("ab-together", "bc-together"):
        assert beta_log.count(f"run {run} round") == ROUNDS
    for key, config in configs.items():
        alone, both = (RunSummary.read(workspace.summary_path(f"{key}-{when}")) for when in ("alone", "together"))
        assert alone.status == both.status == "completed"
        assert [sorted(r.participants) for r in both.rounds] == [sorted(p.name for p in config.parties)] * ROUNDS
        final = load_arrays(RunCheckpoints(workspace.checkpoints, f"{key}-together").global_params(ROUNDS))
        expected = load_arrays(RunCheckpoints(workspace.checkpoints, f"{key}-alone").global_params(ROUNDS))
        assert final.keys() == expected.keys()
        for name in expected:
            np.testing.assert_allclose(final[name], expected[name], rtol=1e-5, atol=1e-6)
    ab, bc = (RunSummary.read(workspace.summary_path(f"{key}-together")) for key in ("ab", "bc"))
    assert ab.started_at < str(bc.finished_at) and bc.started_at < str(ab.finished_at)  # the runs overlapped
