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


def two_federations(root, workspace, layout) -> tuple[dict[str, FederationConfig], dict]:
    """The demo's coordinator runs {alpha, beta}; a second coordinator (own port, own key) runs {beta, gamma}.
    beta serves both, at most one run's request at a time, and holds every plan for its owner."""
    first = load_federation_config(layout.federation_config)
    alpha, beta, gamma = first.parties
    _, secret = write_keypair(workspace.root / "coordinator" / "keys-bc", "coordinator")
    second_key = read_keypair(secret).public
    second_address = f"tcp://127.0.0.1:{free_port()}"
    configs = {
        "ab": first.model_copy(update={"parties": [alpha, beta]}),
        "bc": first.model_copy(
            update={
                "name": "breast-cancer-bc",
                "parties": [beta, gamma],
                "coordinator": CoordinatorConfig(bind=second_address, secret_key_file=secret),
                "promotion": first.promotion.model_copy(update={"model_name": "consortia-bc"}),
            }
        ),
    }
    first_key = read_keypair(first.coordinator.secret_key_file).public
    serves = {alpha.name: ("ab",), beta.name: ("ab", "bc"), gamma.name: ("bc",)}
    for name, federations in serves.items():
        party = load_party_config(layout.party_configs[name])
        policy = load_policy(party.policy)
        assert policy is not None
        keys = {"ab": first_key, "bc": second_key}
        policy = policy.model_copy(
            update={
                "coordinators": [keys[f] for f in federations],
                "federations": [configs[f].name for f in federations],
            }
        )
        if name == beta.name:
            policy = policy.model_copy(update={"max_concurrent_runs": 1, "approval": "manual"})
            party = party.model_copy(
                update={"coordinators": [CoordinatorAddress(address=second_address, public_key=second_key)]}
            )
        elif name == gamma.name:
            party = party.model_copy(update={"coordinator": second_address, "coordinator_public_key": second_key})
        assert party.policy is not None
        dump_yaml(policy, party.policy)
        dump_yaml(party, layout.party_configs[name])
    paths = {key: dump_yaml(config, root / f"{key}.yaml") for key, config in configs.items()}
    return configs, paths


def approve_at(folder, run_ids: set[str]) -> None:
    """The owner approves these runs' plans once all of them are waiting (so the runs start together)."""
    wait_until(lambda: run_ids <= {r.run_id for r in list_requests(folder, "pending")}, 240, f"plans {run_ids}")
    for run_id in sorted(run_ids):
        decide_by_person(folder, run_id, approve=True, reason="test: approved")


def test_two_concurrent_runs_on_overlapping_parties_end_with_the_models_each_run_ends_with_alone(tmp_path):
    workspace, layout = make_federation(
        tmp_path / "ws", parties=3, rounds=ROUNDS, min_parties=2, round_timeout_s=120, training=TRAINING
    )
    configs, paths = two_federations(tmp_path, workspace, layout)
    beta = configs["ab"].parties[1].name
    held = requests_folder(load_party_config(layout.party_configs[beta]))
    logs = tmp_path / "logs"
    logs.mkdir()
    with PartyProcesses(layout.party_configs, workspace.logs) as parties:
        for key in ("ab", "bc"):  # each run alone first
            started = start_consortia(
                "run", str(paths[key]), "--run-id", f"{key}-alone", workspace=workspace.root, log=logs / f"{key}.log"
            )
            approve_at(held, {f"{key}-alone"})
            assert started.wait(timeout=300) == 0, (logs / f"{key}.log").read_text()[-3000:]
        together = {
            key: start_consortia(
                "run", str(paths[key]), "--run-id", f"{key}-together", workspace=workspace.root, log=logs / f"{key}.log"
            )
            for key in ("ab", "bc")
        }
        approve_at(held, {"ab-together", "bc-together"})
        for key, process in together.items():
            assert process.wait(timeout=300) == 0, (logs / f"{key}.log").read_text()[-3000:]
        assert not parties.dead()
    beta_log = (workspace.logs / f"party-{beta}.log").read_text()
    assert "waits its turn" in beta_log  # one run's request queued behind the other's at beta, none refused
    assert "busy" not in beta_log and "refus" not in beta_log
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
