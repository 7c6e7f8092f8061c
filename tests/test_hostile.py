"""A federation that survives hostile input: a registered key ("mallory") sends 100,000 malformed frames to the
coordinator as fast as the connection takes them, during the training rounds of a live run, and never reads a
reply. The run ends with the model of a clean run, no honest party misses a round, the coordinator exits on its own,
and every frame is read, refused by the check it aims at and counted; only a few refusals are answered (the
coordinator throttles its replies to a party that floods)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from components.adapters.checkpoints import RunCheckpoints, load_arrays
from components.adapters.contracts import load_contract
from components.adapters.transport import DealerEndpoint, KeyPair, new_keypair, read_keypair
from components.core.config import PartyEntry, dump_yaml, load_federation_config
from components.core.model_spec import ModelSpec
from components.core.protocol import Envelope, Kind, encode
from components.ml.model import parameter_layout
from components.run.summary import RunSummary
from flows.processes import PartyProcesses
from tests.federation_helpers import make_federation, rounds_done, run_consortia, start_consortia, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]

MALLORY = "mallory"
HONEST = ["alpha", "beta", "gamma"]
ROUNDS = 4
FUZZ_MESSAGES = 100_000
OVERSIZED_EVERY = 1_000  # one in 1,000 is oversized (1.5 MB each): 150 MB in all
MAX_MESSAGE_MB = 1
SLOW_ROUNDS = {"local_epochs": 250, "batch_size": 8, "learning_rate": 0.01, "momentum": 0.0}
Layout = dict[str, tuple[tuple[int, ...], str]]
Refusal = tuple[list[bytes], str]  # frames, and the error code the coordinator must refuse them with


@dataclass(frozen=True)
class BadMessage:
    """Frames the coordinator must refuse, and the error code its refusal must carry."""

    category: str
    frames: list[bytes]
    code: str


class BadMessages:
    """Random and mutated messages from ``sender``; none of them is a valid hello, heartbeat or well-formed reply."""

    def __init__(self, sender: str, layout: Layout, others: list[str], max_message_bytes: int, seed: int) -> None:
        self.sender = sender
        self.layout = layout
        self.others = others
        self.rng = np.random.default_rng(seed)
        # 1.5x the limit in whole uint64s: past 2x libzmq drops the connection before the coordinator can count it
        self.payload = self.rng.bytes(3 * max_message_bytes // 16 * 8)

    def generate(self, count: int) -> list[BadMessage]:
        """``count`` messages, every ``bad_*`` category in turn; one in ``OVERSIZED_EVERY`` oversized (1.5 MB each,
        all sharing one payload buffer)."""
        categories = [(name.removeprefix("bad_"), getattr(self, name)) for name in dir(self) if name.startswith("bad_")]
        messages = []
        for index in range(count):
            oversized = index % OVERSIZED_EVERY == OVERSIZED_EVERY - 1
            category, make = ("oversized", self.oversized) if oversized else categories[index % len(categories)]
            messages.append(BadMessage(category, *make()))
        return messages

    # ---- helpers ----
    def _choice(self, options: list[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def _header(self, kind: Kind = Kind.HEARTBEAT, **fields: Any) -> dict[str, Any]:
        """A valid envelope (as JSON data) from ``sender``, with ``fields`` replaced."""
        return {**Envelope(kind=kind, sender=self.sender).model_dump(mode="json"), **fields}

    def _frames(self, header: dict[str, Any], *tensor_frames: bytes) -> list[bytes]:
        return [json.dumps(header).encode(), *tensor_frames]

    def _update(self, tensors: dict[str, np.ndarray]) -> list[bytes]:
        envelope = Envelope(
            kind=Kind.UPDATE, sender=self.sender, reply_to=self.rng.bytes(16).hex(), body={"num_examples": 10}
        )
        return [bytes(frame) for frame in encode(envelope, tensors)]

    def _model_tensors(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(shape, dtype=dtype) for name, (shape, dtype) in self.layout.items()}

    # ---- categories (one bad message each) ----
    def bad_random_bytes(self) -> Refusal:
        parts = int(self.rng.integers(1, 4))
        frames = [self.rng.bytes(int(self.rng.integers(0, 512))) for _ in range(parts)]
        return frames, "envelope"

    def bad_json_not_an_envelope(self) -> Refusal:
        text = self._choice(["[]", "null", "42", '"hello"', "{}", "[" * 5000 + "]" * 5000, '{"kind": "hello"}'])
        return [text.encode()], "envelope"

    def bad_truncated_envelope(self) -> Refusal:
        full = self._frames(self._header(Kind.HELLO, body={"manifest": {"rows": 100}}))[0]
        return [full[: int(self.rng.integers(0, len(full)))]], "envelope"

    def bad_wrong_version(self) -> Refusal:
        header = self._header(self._choice(list(Kind)), version=self._choice([0, 2, 3, 99, 2**31]))
        return self._frames(header), "version"

    def bad_unknown_kind(self) -> Refusal:
        kind = self._choice(["helo", "HELLO", "update2", "", "admin", "shutdown_all", "ping"])
        return self._frames({**self._header(), "kind": kind}), "envelope"

    def bad_sender_mismatch(self) -> Refusal:
        header = self._header(self._choice([Kind.HEARTBEAT, Kind.BYE, Kind.LEAVE]), sender=self._choice(self.others))
        return self._frames(header), "sender"

    def bad_extra_field(self) -> Refusal:
        header = self._header(**{self._choice(["priority", "admin", "signature", "Sender"]): 1})
        return self._frames(header), "envelope"

    def bad_invalid_field(self) -> Refusal:
        field, value = self._choice(
            [
                ("round", -1),
                ("round", 10**7),
                ("message_id", "not-a-hex-id"),
                ("reply_to", "zz"),
                ("run_id", "r" * 200),
                ("sender", "bad name!"),
                ("body", [1, 2]),
                ("tensors", "none"),
            ]
        )
        return self._frames(self._header(**{field: value})), "envelope"

    def bad_tensor_spec(self) -> Refusal:
        spec = self._choice(
            [
                {"name": "w", "dtype": self._choice(["float16", "int8", "object", "<f4", "complex128"]), "shape": [2]},
                {"name": "w", "dtype": "float32", "shape": [-1]},
                {"name": "w", "dtype": "float32", "shape": [1] * 9},
                {"name": "bad name", "dtype": "float32", "shape": [2]},
                {"name": "w", "dtype": "float32", "shape": [2], "strides": [4]},
            ]
        )
        return self._frames(self._header(tensors=[spec]), b"\0" * 8), "envelope"

    def bad_frame_count(self) -> Refusal:
        listed = int(self.rng.integers(0, 4))
        sent = self._choice([n for n in range(5) if n != listed])
        header = self._header(tensors=[{"name": f"t{i}", "dtype": "float32", "shape": [1]} for i in range(listed)])
        return self._frames(header, *[b"\0" * 4] * sent), "framing"

    def bad_tensor_bytes(self) -> Refusal:
        size = int(self.rng.integers(1, 64))
        off_by = self._choice([-3, -1, 1, 4, 100]) if size > 3 else self._choice([1, 4, 100])
        header = self._header(tensors=[{"name": "w", "dtype": "float32", "shape": [size]}])
        return self._frames(header, b"\0" * (4 * size + off_by)), "tensor"

    def bad_tensor_twice(self) -> Refusal:
        header = self._header(tensors=[{"name": "w", "dtype": "float32", "shape": [1]}] * 2)
        return self._frames(header, b"\0" * 4, b"\0" * 4), "tensor"

    def bad_impossible_shape(self) -> Refusal:
        shape = self._choice([[2**40, 2**40], [2**62, 4], [2**64], [0, 2**63]])
        header = self._header(tensors=[{"name": "w", "dtype": "float32", "shape": shape}])
        return self._frames(header, b""), "tensor"

    def bad_update_wrong_dtype(self) -> Refusal:
        dtype = self._choice(["float64", "int64", "uint32"])
        tensors = {name: array.astype(dtype) for name, array in self._model_tensors().items()}
        return self._update(tensors), "update_rejected"

    def bad_update_not_finite(self) -> Refusal:
        tensors = self._model_tensors()
        target = tensors[self._choice(sorted(tensors))].reshape(-1)
        target[int(self.rng.integers(target.size))] = self._choice([np.nan, np.inf, -np.inf])
        return self._update(tensors), "update_rejected"

    def bad_update_layout(self) -> Refusal:
        tensors = self._model_tensors()
        name = self._choice(sorted(tensors))
        change = self._choice(["missing", "extra", "shape"])
        if change == "missing":
            del tensors[name]
        elif change == "extra":
            tensors["backdoor.weight"] = np.ones(3, dtype=np.float32)
        else:
            tensors[name] = np.zeros((*tensors[name].shape, 2), dtype=tensors[name].dtype)
        return self._update(tensors), "update_rejected"

    def bad_hello_body(self) -> Refusal:
        body = self._choice(
            [
                {},
                {"manifest": "all my rows"},
                {"manifest": {}, "resources": {"cores": "many"}},
                {"manifest": {}, "admin": True},
                {"manifest": {}, "privacy_budget": {"epsilon": -1, "delta": 1e-5}},
            ]
        )
        header = self._header(self._choice([Kind.HELLO, Kind.REGISTER]), body=body)
        return self._frames(header), "body"

    def bad_heartbeat_body(self) -> Refusal:
        body = self._choice([{"busy": [1]}, {"round": "x"}, {"resources": 5}, {"load": 1.0}, {"busy": {"a": 1}}])
        return self._frames(self._header(body=body)), "body"

    def bad_forbidden_kind(self) -> Refusal:
        kind = self._choice(
            [
                Kind.VALIDATE,
                Kind.PROFILE,
                Kind.TRAIN,
                Kind.EVALUATE,
                Kind.WELCOME,
                Kind.SHUTDOWN,
                Kind.SECAGG_SETUP,
                Kind.SECAGG_ROSTER,
                Kind.SECAGG_UNMASK,
            ]
        )
        return self._frames(self._header(kind)), "kind"

    def oversized(self) -> Refusal:
        header = self._header(tensors=[{"name": "blob", "dtype": "uint64", "shape": [len(self.payload) // 8]}])
        return self._frames(header, self.payload), "too_large"


class Mallory:
    """Mallory's registered key on a DEALER: sends bad messages as fast as the connection takes them, reads nothing.

    The socket stays open until the coordinator has read everything: closing a TCP connection with replies still
    arriving makes the kernel reset it, and a reset discards what the coordinator had not read yet."""

    def __init__(self, address: str, server_public_key: str, keys: KeyPair) -> None:
        # a send that cannot go out for a minute fails the test (the coordinator is gone) instead of hanging it
        self.endpoint = DealerEndpoint(address, server_public_key, keys, linger_ms=0, send_timeout_ms=60_000)
        self.sent = 0

    def flood(self, messages: list[BadMessage]) -> None:
        for message in messages:
            self.endpoint.send(message.frames)  # waits only while the connection is full, never for a reply
            self.sent += 1

    def close(self) -> None:
        self.endpoint.close()


def _accounting(log_text: str, party: str) -> tuple[int, int, Counter[str]]:
    """(rejected, replies throttled, rejections by code) from the line the coordinator logs at close."""
    found = re.findall(
        rf"rejections from {party}: (\d+) in total, (\d+) replies throttled, \d+ replies dropped by the transport, "
        rf"\d+ late, \d+ unasked messages over its rate dropped; by code: (.*)$",
        log_text,
        flags=re.MULTILINE,
    )
    assert len(found) == 1, f"{len(found)} accounting lines for {party}"
    total, throttled, codes = found[0]
    by_code = Counter({code: int(n) for code, n in (item.split("=") for item in codes.split(", "))})
    return int(total), int(throttled), by_code


def _logged_rejections(log_text: str, party: str) -> int:
    """Rejections of ``party``'s messages the log accounts for: one line each, or counted in a summary line."""
    one_by_one = log_text.count(f"rejected a message from {party} (code ")
    summarised = sum(int(n) for n in re.findall(rf"(\d+) more messages from {party} not logged one by one", log_text))
    return one_by_one + summarised


def test_every_bad_frame_is_refused_and_counted_during_a_live_run(tmp_path):
    workspace, layout = make_federation(
        tmp_path / "ws",
        parties=len(HONEST),
        rounds=ROUNDS,
        min_parties=len(HONEST),
        join_timeout_s=3,  # mallory never says a valid hello: do not wait long for it
        round_timeout_s=60,
        max_message_mb=MAX_MESSAGE_MB,
        training=SLOW_ROUNDS,
    )
    mallory_keys = new_keypair()
    config = load_federation_config(layout.federation_config)
    config.parties.append(PartyEntry(name=MALLORY, public_key=mallory_keys.public))
    config_path = str(dump_yaml(config, layout.federation_config))
    contract = load_contract(config.contract.name, config.contract.version)
    spec = ModelSpec(n_features=contract.n_features, n_classes=contract.n_classes, hidden=config.model.hidden)
    fuzzer = BadMessages(MALLORY, parameter_layout(spec), HONEST, MAX_MESSAGE_MB << 20, seed=0)
    generating = ThreadPoolExecutor(1).submit(fuzzer.generate, FUZZ_MESSAGES)  # while the reference run runs
    server_key = read_keypair(config.coordinator.secret_key_file).public
    output = tmp_path / "fuzzed-run.out"
    with PartyProcesses(layout.party_configs, workspace.logs):
        reference = run_consortia("run", config_path, "--run-id", "reference", workspace=workspace.root)
        assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
        coordinator = start_consortia("run", config_path, "--run-id", "fuzzed", workspace=workspace.root, log=output)
        mallory = None
        try:
            started = RunCheckpoints(workspace.checkpoints, "fuzzed").global_params(0)  # round 0 saved: rounds begin
            wait_until(started.exists, 180, "the training rounds of the fuzzed run")
            messages = generating.result()
            mallory = Mallory(config.coordinator.bind, server_key, mallory_keys)
            flood_started = time.monotonic()
            mallory.flood(messages)
            flood_seconds = time.monotonic() - flood_started
            rounds_when_flood_ended = len(rounds_done(workspace, "fuzzed"))
            assert coordinator.wait(timeout=240) == 0, output.read_text()[-3000:]  # it exits on its own
        finally:
            if coordinator.poll() is None:
                os.killpg(coordinator.pid, signal.SIGKILL)
            if mallory is not None:
                mallory.close()
    assert mallory.sent == FUZZ_MESSAGES
    assert rounds_when_flood_ended < ROUNDS, "the flood outlasted the training rounds"
    fuzzed = RunSummary.read(workspace.summary_path("fuzzed"))
    assert fuzzed.status == "completed"
    assert fuzzed.rejected_messages == {MALLORY: FUZZ_MESSAGES}  # every message was read and counted
    assert MALLORY not in fuzzed.late_messages
    assert [(r.round, sorted(r.participants)) for r in fuzzed.rounds] == [(n, HONEST) for n in range(1, ROUNDS + 1)]
    assert not any(r.rejected for r in fuzzed.rounds)  # no honest update was refused
    reference_summary = RunSummary.read(workspace.summary_path("reference"))
    assert reference_summary.rejected_messages == {}
    final = load_arrays(RunCheckpoints(workspace.checkpoints, "fuzzed").global_params(ROUNDS))
    expected = load_arrays(RunCheckpoints(workspace.checkpoints, "reference").global_params(ROUNDS))
    assert sorted(final) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(final[name], expected[name], rtol=1e-5, atol=1e-6)
    coordinator_log = (workspace.logs / "coordinator.log").read_text()
    total, throttled, by_code = _accounting(coordinator_log, MALLORY)
    assert total == FUZZ_MESSAGES
    assert by_code == Counter(m.code for m in messages)  # each refused by the check it aims at, in aggregate
    assert 0 < throttled <= FUZZ_MESSAGES  # the throttle engaged: most refusals were counted, not answered
    assert _logged_rejections(coordinator_log, MALLORY) == FUZZ_MESSAGES  # logged one by one or in a counted summary
    assert coordinator_log.count(f"rejected a message from {MALLORY} (code ") < 1_000  # the log was not flooded
    for party in HONEST:
        assert f"rejections from {party}:" not in coordinator_log  # honest parties were never refused or throttled
    print(
        f"\nflood: {FUZZ_MESSAGES} messages in {flood_seconds:.1f}s (ended after round {rounds_when_flood_ended}), "
        f"{throttled} refusals not answered; "
        f"round seconds reference {[round(r.seconds or 0, 1) for r in reference_summary.rounds]} "
        f"fuzzed {[round(r.seconds or 0, 1) for r in fuzzed.rounds]}"
    )
