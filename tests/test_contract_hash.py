"""The contract's content hash: stable, sensitive to schema and suite, carried by requests; a party holding
another copy of the contract refuses to run anything, and the run fails naming both hashes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import components.adapters.contracts as contracts_adapter
from components.adapters.contracts import CONTRACTS_ROOT, load_contract
from components.adapters.transport import new_keypair, write_keypair
from components.core.config import load_federation_config
from components.core.contract import CONTRACT_MISMATCH, Contract
from components.core.errors import ContractError
from components.core.model_spec import ModelSpec
from components.core.protocol import Envelope, Kind, decode, encode
from components.core.protocol.bodies import EvaluateRequest, ProfileRequest, ValidateRequest
from components.run.federation import FederationRun
from components.run.validation import refuse_contract_mismatches
from components.twins.contracts import validate_with_schema
from flows.demo import dataset_frame
from flows.federation import PLAIN_STEPS, drive
from party_agent.agent import PartyAgent
from party_agent.config import PartyConfig, load_party_config
from tests.run_twins import twin_federation

HASH_PATTERN = r"^sha256:[0-9a-f]{16}$"


def schema_and_suite(name: str = "breast_cancer", version: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = CONTRACTS_ROOT / name / f"v{version}"
    return json.loads((folder / "schema.json").read_text()), json.loads((folder / "suite.json").read_text())


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def test_content_hash_is_stable_across_key_order_loads_and_processes():
    contract = load_contract("breast_cancer", 1)
    schema, suite = schema_and_suite()

    assert contract.content_hash == "sha256:21a34a9e6327834a"  # pinned: parties on other releases must agree
    assert contract.content_hash == load_contract("breast_cancer", 1).content_hash
    assert Contract(**reversed_keys(schema), suite=reversed_keys(suite)).content_hash == contract.content_hash
    assert Contract(**schema, task="binary", suite=suite).content_hash == contract.content_hash  # the default, said
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "from components.adapters.contracts import load_contract as load; "
            "print(load('breast_cancer', 1).content_hash)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert other.stdout.strip() == contract.content_hash
    assert len(contract.content_digest) == 64 and contract.content_digest.startswith(contract.content_hash[7:])


def test_content_hash_changes_with_the_suite_and_the_schema():
    schema, suite = schema_and_suite()
    base = Contract(**schema, suite=suite).content_hash
    wider = json.loads(json.dumps(suite))
    wider["expectations"][-2]["kwargs"]["value_set"] = [0, 1, 2]
    bound = json.loads(json.dumps(suite))
    between = next(e for e in bound["expectations"] if e["type"] == "expect_column_values_to_be_between")
    between["kwargs"]["max_value"] += 1

    hashes = {
        base,
        Contract(**schema, suite=wider).content_hash,
        Contract(**schema, suite=bound).content_hash,
        Contract(**{**schema, "description": "edited in place"}, suite=suite).content_hash,
        Contract(**{**schema, "features": schema["features"][::-1]}, suite=suite).content_hash,
    }
    assert len(hashes) == 5
    assert all(re.match(HASH_PATTERN, h) for h in hashes)


def test_contract_model_checks_task_classes_and_shape():
    schema, suite = schema_and_suite()
    assert Contract(**schema, suite=suite).task == "binary"
    digits_schema, digits_suite = schema_and_suite("digits", 1)
    assert Contract(**digits_schema, suite=digits_suite).task == "multiclass"
    with pytest.raises(ValueError, match="exactly 2 classes"):
        Contract(**{**schema, "classes": [0, 1, 2], "task": "binary"}, suite=suite)
    with pytest.raises(ValueError, match="lists no classes"):
        Contract(**{**schema, "task": "regression"}, suite=suite)
    with pytest.raises(ValueError, match="these classes are not"):
        Contract(**{**schema, "classes": ["no", "yes"]}, suite=suite)  # diagnosis is int64
    with pytest.raises(ValueError, match="holds 16 values, not the 30 features"):
        Contract(**schema, input_shape=[1, 4, 4], suite=suite)
    text = Contract(
        **{**schema, "classes": ["no", "yes"], "dtypes": {**schema["dtypes"], "diagnosis": "string"}}, suite={}
    )
    assert text.label_indices(["yes", "no", "yes"]) == [1, 0, 1]
    assert text.labels_of([1, 0]) == ["yes", "no"]
    with pytest.raises(ValueError, match="1 label.*: maybe"):
        text.label_indices(["yes", "maybe"])


def test_validation_turns_mismatch_errors_into_a_contract_error_naming_parties_and_hashes():
    contract = load_contract("breast_cancer", 1)
    errors = {
        "alpha": f"{CONTRACT_MISMATCH}: party alpha has breast_cancer@v1 sha256:1111111111111111, the coordinator sent "
        f"{contract.content_hash}",
        "beta": "not connected",
    }

    with pytest.raises(ContractError) as caught:
        refuse_contract_mismatches(errors, contract)

    message = str(caught.value)
    assert "1 party holds another copy of breast_cancer@v1" in message
    assert "alpha: party alpha has breast_cancer@v1 sha256:1111111111111111" in message
    assert contract.content_hash in message and "beta" not in message
    refuse_contract_mismatches({"beta": "not connected"}, contract)  # silence stays a matter for retries


# ---- the party agent refuses requests carrying another hash ----


class RecordingEndpoint:
    """A DealerPort that keeps what the agent sends."""

    def __init__(self, *_: Any) -> None:
        self.sent: list[list[Any]] = []

    def send(self, frames: Any) -> None:
        self.sent.append(list(frames))

    def receive(self, timeout_s: float) -> list[Any] | None:
        return None

    def close(self) -> None:
        pass

    def last(self) -> Envelope:
        return decode(self.sent[-1])[0]


@pytest.fixture
def agent(tmp_path: Path) -> PartyAgent:
    data = tmp_path / "alpha.csv"
    dataset_frame("breast_cancer").head(60).to_csv(data, index=False)
    _, secret = write_keypair(tmp_path / "keys", "alpha")
    config = PartyConfig(
        name="alpha",
        data=data,
        contract="breast_cancer",
        coordinator_public_key=new_keypair().public,
        secret_key_file=secret,
    )
    return PartyAgent(config, RecordingEndpoint, validate_with_schema)


def request(kind: Kind, body: dict[str, Any]) -> list[Any]:
    return encode(Envelope(kind=kind, run_id="r", round=0, sender="coordinator", body=body))


def finish(agent: PartyAgent, endpoint: RecordingEndpoint) -> Envelope:
    assert agent._job is not None
    agent._job.future.exception(timeout=30)  # waits; _finish_job turns a failure into an error reply
    agent._finish_job(endpoint)
    return endpoint.last()


@pytest.mark.parametrize("kind", [Kind.VALIDATE, Kind.PROFILE, Kind.TRAIN, Kind.EVALUATE])
def test_party_refuses_any_request_with_another_contract_hash_and_runs_nothing(agent, kind):
    endpoint = RecordingEndpoint()
    sent_hash = "sha256:0123456789abcdef"
    body = {"contract": "breast_cancer", "version": 1} if kind == Kind.VALIDATE else {}

    agent._handle(endpoint, request(kind, {**body, "contract_hash": sent_hash}))

    assert agent._job is None  # nothing was started
    reply = endpoint.last()
    assert reply.kind == Kind.ERROR and reply.body["code"] == CONTRACT_MISMATCH
    assert reply.body["message"].startswith(
        f"party alpha has breast_cancer@v1 {agent.contract.content_hash}, the coordinator sent {sent_hash}"
    )


def test_party_runs_requests_with_its_own_hash_or_none(agent):
    endpoint = RecordingEndpoint()
    own = agent.contract.content_hash

    agent._handle(endpoint, request(Kind.PROFILE, ProfileRequest(contract_hash=own).model_dump()))
    assert finish(agent, endpoint).kind == Kind.PROFILE_RESULT
    agent._handle(endpoint, request(Kind.PROFILE, {}))  # a coordinator that sends no hash is not refused
    assert finish(agent, endpoint).kind == Kind.PROFILE_RESULT
    asked = ValidateRequest(contract="breast_cancer", version=1, contract_hash=own).model_dump()
    agent._handle(endpoint, request(Kind.VALIDATE, asked))
    assert finish(agent, endpoint).kind == Kind.VALIDATION


def test_a_validation_of_another_contract_is_compared_with_the_partys_copy_of_that_one(agent):
    endpoint = RecordingEndpoint()
    digits = load_contract("digits", 2)
    asked = ValidateRequest(contract="digits", version=2, contract_hash="sha256:ffffffffffffffff").model_dump()

    agent._handle(endpoint, request(Kind.VALIDATE, asked))

    assert agent._job is None
    assert f"party alpha has digits@v2 {digits.content_hash}" in endpoint.last().body["message"]
    agent._handle(endpoint, request(Kind.VALIDATE, {**asked, "contract_hash": digits.content_hash}))
    assert agent._job is not None  # the same copy: it validates (and fails: its rows are not digits)
    agent._job.future.exception(timeout=30)
    agent._job = None


# ---- a whole run over twins ----


def edited_copy(tmp_path: Path) -> Path:
    """A contracts folder whose breast_cancer@v1 was edited in place (the mistake the hash catches)."""
    root = tmp_path / "edited_contracts"
    shutil.copytree(CONTRACTS_ROOT / "breast_cancer", root / "breast_cancer")
    schema_path = root / "breast_cancer" / "v1" / "schema.json"
    schema = json.loads(schema_path.read_text())
    schema["description"] += " Edited in place."
    schema_path.write_text(json.dumps(schema))
    return root


def test_a_run_with_a_party_holding_an_edited_contract_fails_with_both_hashes_before_training(tmp_path, monkeypatch):
    federation = twin_federation(tmp_path / "ws", parties=3, rounds=2)
    config = load_federation_config(federation.config_path)
    agents = []
    for name, path in federation.layout.party_configs.items():
        with monkeypatch.context() as patched:
            if name == "alpha":
                patched.setattr(contracts_adapter, "CONTRACTS_ROOT", edited_copy(tmp_path))
            agents.append(PartyAgent(load_party_config(path), federation.network.dealer, validate_with_schema))
    alpha = agents[0]
    coordinator_hash = load_contract("breast_cancer", 1).content_hash
    assert alpha.config.name == "alpha" and alpha.contract.content_hash != coordinator_hash
    threads = [threading.Thread(target=a.run, daemon=True) for a in agents]
    for thread in threads:
        thread.start()
    try:
        run = FederationRun(config, federation.workspace, "mismatch", edges=federation.edges)
        with pytest.raises(ContractError) as caught:
            drive(run, PLAIN_STEPS)
    finally:
        for a in agents:
            a.stop()
        for thread in threads:
            thread.join(timeout=5)
    message = str(caught.value)
    assert "1 party holds another copy of breast_cancer@v1" in message
    assert f"alpha: party alpha has breast_cancer@v1 {alpha.contract.content_hash}" in message
    assert f"the coordinator sent {coordinator_hash}" in message
    assert "beta" not in message and "gamma" not in message
    assert run.summary.status == "failed"
    assert run.summary.error == f"ContractError: {message}"
    assert not [row for row in federation.store.tables["rounds"] if row["run_id"] == "mismatch"]
    assert run.checkpoints.last_round() < 0  # not even round 0's model: nothing was asked of the parties after this


def test_a_party_with_a_label_its_contract_lacks_starts_and_refuses_to_learn_from_it(agent, tmp_path):
    data = tmp_path / "seven.csv"
    dataset_frame("breast_cancer").head(60).assign(diagnosis=lambda f: f["diagnosis"].where(f.index != 4, 7)).to_csv(
        data, index=False
    )
    spoiled = PartyAgent(agent.config.model_copy(update={"data": data}), RecordingEndpoint, validate_with_schema)
    endpoint = RecordingEndpoint()
    body = EvaluateRequest(model=ModelSpec(n_features=30, n_classes=2), contract_hash=spoiled.contract.content_hash)

    spoiled._handle(endpoint, request(Kind.EVALUATE, body.model_dump()))

    reply = finish(spoiled, endpoint)
    assert reply.kind == Kind.ERROR and reply.body["code"] == "ContractError"
    assert "1 label(s) not among the classes of breast_cancer@v1: 7" in reply.body["message"]
