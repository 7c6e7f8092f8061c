"""The party agent daemon: connects to its coordinators, answers requests, sends heartbeats.

Local work (validation, training) runs on worker threads so heartbeats keep flowing while busy. An agent can
serve several coordinators at once (``coordinators`` in party.yaml), each over its own connection and with its
own runs; its policy's ``max_concurrent_runs`` (default: the cores) bounds how many runs' requests are worked on
at once, and a request beyond it waits its turn (in arrival order) instead of being refused.
Only summaries, metrics and model weights ever leave this process.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from components.adapters.contracts import load_contract, read_dataset, split_features, validate_dataset
from components.adapters.manifest import build_manifest
from components.adapters.transport import DealerEndpoint, read_keypair
from components.core import standardization
from components.core.contract import CONTRACT_MISMATCH, Contract, ValidationSummary
from components.core.errors import (
    BudgetExceeded,
    ConsortiaError,
    ContractError,
    PartyUnavailable,
    PolicyRefusal,
    ProtocolError,
)
from components.core.federated_stats import Suppressed
from components.core.glm.secure import secure_vector
from components.core.params import Params
from components.core.policy import PartyPolicy, within_hours
from components.core.ports import DealerFactory, DealerPort
from components.core.protocol import Envelope, Kind, decode, encode
from components.core.protocol.bodies import (
    ErrorReply,
    EvaluateRequest,
    EvaluationReply,
    Heartbeat,
    Hello,
    ProfileReply,
    Resources,
    RunEnded,
    TrainRequest,
    UpdateReply,
    ValidateRequest,
    ValidationReply,
    parse_body,
)
from components.core.protocol.glm import GlmSumsRequest
from components.core.protocol.messages import HELLO_REQUIRED
from components.core.protocol.plan import PlanDecision, RunPlan
from components.core.secagg.protocol import KeyRoster, SecAggClient, SecAggConfig, ShareBundle, UnmaskRequest
from components.core.secagg.vectors import encode_update
from components.core.splits import ValidationSplit
from components.core.strategies.dp import privatize_update
from party_agent.audit import AuditLog
from party_agent.config import CoordinatorAddress, PartyConfig, requests_folder
from party_agent.glm import glm_sums
from party_agent.glm import reply as glm_reply
from party_agent.plans import PlanDesk, load_policy
from party_agent.signoff import keep_summary, read_summary, summary_path
from party_agent.stats import party_stats
from party_agent.wire_capture import WireCapture

log = logging.getLogger("party_agent")


def _warm_up_training() -> None:
    """Import training and take one optimiser step: what the first round would otherwise load."""
    from components.ml.training import warm_up

    warm_up()


@dataclass
class _Job:
    request: Envelope
    future: Future[tuple[Kind, dict[str, Any], Params]]


class _Slots:
    """How many runs' requests are being worked on, of at most ``limit`` (shared by every coordinator's link)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Count one more request; True if it has to wait for a free slot."""
        with self._lock:
            self.busy += 1
            return self.busy > self.limit

    def give(self, _: object = None) -> None:
        with self._lock:
            self.busy -= 1


class PartyAgent:
    """One party: its data stays here; it answers the coordinator's requests."""

    def __init__(
        self,
        config: PartyConfig,
        dealer: DealerFactory = DealerEndpoint,
        validate: Callable[[pd.DataFrame, Contract], ValidationSummary] = validate_dataset,
        worker: Executor | None = None,
    ) -> None:
        """``dealer`` opens the connection and ``validate`` checks a frame against a contract (twins in unit tests);
        ``worker`` runs the local work (default: a thread of this agent's own; a simulation shares one)."""
        self.config = config
        self._dealer = dealer
        self._validate_frame = validate
        self.contract = load_contract(config.contract, config.contract_version)
        self.frame = read_dataset(config.data, self.contract)
        self._label_error: ContractError | None = None
        try:
            self.features, self._labels = split_features(self.frame, self.contract)
        except ContractError as error:  # a label the contract lacks: validation reports it, training refuses
            self.features, self._labels = self.frame[self.contract.features].to_numpy(dtype=np.float32), None
            self._label_error = error
        self.manifest = build_manifest(config.name, config.data, self.frame, self.contract.name, self.contract.version)
        self.keys = read_keypair(config.secret_key_file)
        self.audit = AuditLog(config.audit_log) if config.audit_log else None
        self.wire = WireCapture(config.wire_log) if config.wire_log else None
        policy = load_policy(config.policy)
        self.plans = PlanDesk(policy or PartyPolicy(), requests_folder(config), enforce=policy is not None)
        self.privacy_budget = (policy.privacy_budget if policy else None) or config.privacy_budget
        limit = (policy.max_concurrent_runs if policy else None) or os.cpu_count() or 1
        self._slots = _Slots(limit)
        self._own_worker = worker is None
        self._worker = worker or ThreadPoolExecutor(max_workers=limit, thread_name_prefix="party-work")
        self._lock = threading.RLock()  # the plan desk, the audit log and the wire log, shared by every link
        self._hashed_contract: tuple[Contract, str] | None = None  # the last contract hashed, and its hash
        self._stop = threading.Event()
        self._own_validation: Future[ValidationSummary] | None = None
        self._reset_link()

    def _reset_link(self) -> None:
        """The state of one coordinator's link: its request in progress, held plans, secure-aggregation round."""
        self._held: dict[str, Envelope] = {}  # run id -> plan request waiting for the owner
        self._held_polled = 0.0
        self._last_beat = 0.0
        self._job: _Job | None = None
        self._current = ("", 0)
        self._secagg: tuple[tuple[str, int], SecAggClient] | None = None
        self._hello_sent_at = float("-inf")

    def _linked(self, coordinator: CoordinatorAddress) -> PartyAgent:
        """This agent as seen by one more coordinator: the same data, keys, policy, plan desk, logs and workers,
        its own connection and link state."""
        link = copy.copy(self)
        link.config = self.config.model_copy(
            update={"coordinator": coordinator.address, "coordinator_public_key": coordinator.public_key}
        )
        link._reset_link()
        return link

    # ---- main loop ----
    def run(self) -> None:
        """Serve every configured coordinator until stopped (SIGTERM/SIGINT or ``stop()``); ConfigError if
        another agent is running with this party's audit log."""
        if self.audit is not None:
            self.audit.hold()
        # validate and load torch first, then say hello: a party that joined while its worker was still busy with
        # either would queue its first request behind that and, joining a run in progress, miss rounds
        self._own_validation = self._worker.submit(self._validate_own_data)
        warmed = self._worker.submit(_warm_up_training)
        links = [self, *(self._linked(c) for c in self.config.coordinators)]  # they share that validation
        endpoints = [self._dealer(k.config.coordinator, k.config.coordinator_public_key, self.keys) for k in links]
        self._install_signal_handlers()
        log.info(
            "party %s: %d rows, joining %s",
            self.config.name,
            len(self.frame),
            ", ".join(link.config.coordinator for link in links),
        )
        futures.wait([self._own_validation, warmed])
        others = [
            threading.Thread(target=link._serve, args=(endpoint,), name=f"coordinator-{index}", daemon=True)
            for index, (link, endpoint) in enumerate(zip(links, endpoints, strict=True))
            if index > 0
        ]
        for thread in others:
            thread.start()
        try:
            self._serve(endpoints[0])
        finally:
            self._stop.set()
            for thread in others:
                thread.join(timeout=5)
            if self._own_worker:
                self._worker.shutdown(wait=False, cancel_futures=True)
            if self.audit is not None:
                self.audit.release()
            log.info("party %s stopped", self.config.name)

    def _serve(self, endpoint: DealerPort) -> None:
        """Say hello to this link's coordinator, then answer it until stopped."""
        self._say_hello(endpoint)
        self._last_beat = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._job is not None:  # reply the moment the job is done, not at the next poll's timeout
                    futures.wait([self._job.future], timeout=0.1)
                self.serve(endpoint, endpoint.receive(timeout_s=0 if self._job is not None else 0.1))
        finally:
            self._send(endpoint, Envelope(kind=Kind.BYE, sender=self.config.name))
            endpoint.close()

    # ---- driven from outside (``consortia simulate``: many agents on one poller) ----
    def join(self, endpoint: DealerPort) -> None:
        """Validate this party's own rows and load torch, then say hello on ``endpoint`` (its one coordinator)."""
        log.info("party %s: %d rows, joining %s", self.config.name, len(self.frame), self.config.coordinator)
        self._own_validation = self._worker.submit(self._validate_own_data)
        futures.wait([self._own_validation, self._worker.submit(_warm_up_training)])
        self._say_hello(endpoint)
        self._last_beat = time.monotonic()

    def serve(self, endpoint: DealerPort, frames: list[Any] | None) -> None:
        """One turn of the loop: handle ``frames`` (if a message came), send a finished job's reply, the owner's
        decisions on held plans, and a heartbeat when one is due. Never waits."""
        if frames is not None:
            self._handle(endpoint, frames)
        self._finish_job(endpoint)
        self._answer_held(endpoint)
        if time.monotonic() - self._last_beat >= self.config.heartbeat_interval_s:
            self._send(endpoint, self._heartbeat())
            self._last_beat = time.monotonic()

    def leave(self, endpoint: DealerPort) -> None:
        """Say bye and close ``endpoint`` (and this agent's own worker)."""
        try:
            self._send(endpoint, Envelope(kind=Kind.BYE, sender=self.config.name))
        finally:
            if self._own_worker:
                self._worker.shutdown(wait=False, cancel_futures=True)
            endpoint.close()
            log.info("party %s stopped", self.config.name)

    def stop(self) -> None:
        self._stop.set()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())

    def _say_hello(self, endpoint: DealerPort) -> None:
        self._send(endpoint, Envelope(kind=Kind.HELLO, sender=self.config.name, body=self._hello()))
        self._hello_sent_at = time.monotonic()

    def _send(self, endpoint: DealerPort, envelope: Envelope, tensors: Params | None = None) -> None:
        frames = encode(envelope, tensors)
        with self._lock:
            if self.wire is not None:
                self.wire.record(frames)
            if self.audit is not None:
                self.audit.sent(envelope, frames)
        endpoint.send(frames)
        if self.audit is not None:
            self.audit.write_head()

    # ---- requests ----
    def _handle(self, endpoint: DealerPort, frames: list[Any]) -> None:
        try:
            envelope, tensors = decode(frames)
        except ProtocolError as error:
            log.warning("ignored a malformed message from the coordinator: %s", error)
            return
        if envelope.kind == Kind.ERROR and envelope.body.get("code") == HELLO_REQUIRED:
            # a restarted coordinator answers every heartbeat queued while it was down: one hello is enough
            if time.monotonic() - self._hello_sent_at >= self.config.heartbeat_interval_s:
                self._say_hello(endpoint)
            return
        if envelope.kind == Kind.ERROR:
            log.warning("coordinator says error: %s", envelope.body)
            return
        if envelope.kind == Kind.WELCOME:
            if envelope.body:  # an answer to register or leave
                log.info("coordinator says welcome: %s", envelope.body)
            else:
                log.info("joined: the coordinator at %s accepted %s", self.config.coordinator, self.config.name)
            self._send(endpoint, self._heartbeat())
            return
        if envelope.kind == Kind.SHUTDOWN:
            self._log_run_end(envelope)
            return
        if envelope.kind == Kind.PLAN:  # decided here, not on the worker: a plan is read, never run
            with self._lock:
                self._receive_plan(endpoint, envelope)
            return
        if self._job is not None:
            self._send(endpoint, self._error(envelope, "busy", "a previous request is still running"))
            return
        handlers = {
            Kind.VALIDATE: self._validate,
            Kind.PROFILE: self._profile,
            Kind.TRAIN: self._train,
            Kind.EVALUATE: self._evaluate,
            Kind.GLM_SUMS: self._glm_sums,
            Kind.STATS: self._stats,
            Kind.SECAGG_SETUP: self._secagg_setup,
            Kind.SECAGG_ROSTER: self._secagg_share,
            Kind.SECAGG_UNMASK: self._secagg_reveal,
        }
        handler = handlers.get(envelope.kind)
        if handler is None:
            self._send(endpoint, self._error(envelope, "kind", f"cannot handle {envelope.kind.value}"))
            return
        refusal = self._contract_refusal(envelope)
        if refusal is not None:  # nothing runs on another copy of the contract
            log.warning("refused %s: %s", envelope.kind.value, refusal)
            self._send(endpoint, self._error(envelope, CONTRACT_MISMATCH, refusal))
            return
        with self._lock:
            refusal = self.plans.refusal(envelope.run_id)
        if refusal is not None:  # nothing runs on this party's data outside a plan it accepted
            log.warning("refused %s: %s", envelope.kind.value, refusal)
            self._send(endpoint, self._error(envelope, "PolicyRefusal", refusal))
            return
        self._current = (envelope.run_id, envelope.round)
        if self._slots.take():
            log.info(
                "%s of run %s waits its turn: %d runs' requests at once at most (max_concurrent_runs)",
                envelope.kind.value,
                envelope.run_id,
                self._slots.limit,
            )
        future = self._worker.submit(handler, envelope, tensors)
        future.add_done_callback(self._slots.give)
        self._job = _Job(envelope, future)

    # ---- run plans ----
    def _receive_plan(self, endpoint: DealerPort, request: Envelope) -> None:
        try:
            plan = parse_body(RunPlan, request.body)
            if plan.run_id != request.run_id:
                raise ProtocolError(f"a plan for run {plan.run_id!r} sent as run {request.run_id!r}", code="ids")
        except ProtocolError as error:
            self._send(endpoint, self._error(request, error.code, str(error)))
            return
        if self.audit is not None:
            self.audit.append("plan", plan.run_id, 0, plan=plan.model_dump(mode="json"))
        decision = self.plans.receive(plan, self.config.coordinator_public_key)
        if decision is None:
            self._held[plan.run_id] = request
            if self.audit is not None:
                self.audit.append("decision", plan.run_id, 0, verdict="hold", reason="held for the data owner")
            log.warning(
                "run %s is held for you: `party-agent requests`, then `party-agent approve %s` "
                "or `party-agent deny %s --reason TEXT`",
                plan.run_id,
                plan.run_id,
                plan.run_id,
            )
            return
        self._decided(endpoint, request, decision)

    def _answer_held(self, endpoint: DealerPort) -> None:
        """Send the owner's decision on each held plan once it is made (the files are read twice a second)."""
        if not self._held or time.monotonic() - self._held_polled < 0.5:
            return
        self._held_polled = time.monotonic()
        for run_id, request in list(self._held.items()):
            try:
                with self._lock:
                    decision = self.plans.poll(run_id)
            except (ValueError, OSError) as error:  # a file the owner is editing by hand
                log.warning("could not read the plan of run %s: %s", run_id, error)
                continue
            if decision is not None:
                del self._held[run_id]
                self._decided(endpoint, request, decision)

    def _decided(self, endpoint: DealerPort, request: Envelope, decision: PlanDecision) -> None:
        level = logging.INFO if decision.verdict == "accept" else logging.WARNING
        log.log(level, "run %s: %s (%s) %s", request.run_id, decision.verdict, decision.rule or "", decision.reason)
        if self.audit is not None:
            self.audit.append("decision", request.run_id, 0, **decision.model_dump())
        self._send(endpoint, request.reply(Kind.DECISION, self.config.name, decision.model_dump()))

    @property
    def labels(self) -> np.ndarray:
        """Class indices (or regression values) of the rows; ContractError when a label is not in the contract."""
        if self._labels is None:
            raise self._label_error or ContractError(f"no labels under {self.contract.ref}")
        return self._labels

    def _contract_refusal(self, request: Envelope) -> str | None:
        """Why this party will not run ``request``: the contract_hash it carries is not this party's copy's hash.

        A validation request names its contract: the hash is compared with this party's copy of that one."""
        sent = request.body.get("contract_hash")
        if sent is None:
            return None
        mine = self.contract
        if request.kind == Kind.VALIDATE:
            asked = (request.body.get("contract"), request.body.get("version"))
            if asked != (mine.name, mine.version):
                try:
                    mine = load_contract(*asked)  # type: ignore[arg-type]
                except (ConsortiaError, TypeError, ValueError):
                    return None  # the validation itself reports that this party lacks the contract
        if sent == self._content_hash(mine):
            return None
        return (
            f"party {self.config.name} has {mine.ref} {mine.content_hash}, the coordinator sent {str(sent)[:80]}; "
            f"compare the copies with `consortia contract show {mine.name} --version {mine.version}`"
        )

    def _content_hash(self, contract: Contract) -> str:
        """``contract.content_hash``, hashed once per contract object (every request carries the hash)."""
        hashed = self._hashed_contract
        if hashed is None or hashed[0] is not contract:
            hashed = self._hashed_contract = (contract, contract.content_hash)
        return hashed[1]

    def _finish_job(self, endpoint: DealerPort) -> None:
        if self._job is None or not self._job.future.done():
            return
        job, self._job = self._job, None
        try:
            kind, body, tensors = job.future.result()
            self._send(endpoint, job.request.reply(kind, self.config.name, body), tensors)
        except ConsortiaError as error:
            log.warning("request %s failed: %s", job.request.kind.value, error)
            self._send(endpoint, self._error(job.request, type(error).__name__, str(error)))
        except Exception as error:  # a bug here must not kill the daemon
            log.exception("request %s crashed", job.request.kind.value)
            self._send(endpoint, self._error(job.request, "internal", repr(error)))

    def _validate_own_data(self) -> ValidationSummary:
        """Check the rows this agent trains on against its configured contract, so the owner knows at start-up.

        With a ``validation_cache``, the summary of these exact rows (the data file's content hash) against this
        exact contract (its content hash) is validated once and reused while neither changes."""
        cached = self.cached_validation()
        summary = read_summary(cached)
        if summary is not None:
            self._log_validation(self.contract.ref + " (signed-off summary: rows and contract unchanged)", summary)
            return summary
        try:
            summary = self._validate_frame(self.frame, self.contract)
        except Exception:
            log.exception("could not validate %s against %s", self.config.data, self.contract.ref)
            raise  # the coordinator's validation request gets the error
        self._log_validation(self.contract.ref, summary)
        keep_summary(cached, summary)
        return summary

    def cached_validation(self) -> Path | None:
        """Where the signed-off summary of these rows against this contract is kept (None: no cache)."""
        return summary_path(self.config.validation_cache, self.manifest.content_hash, self.contract.content_hash)

    def _validate(self, request: Envelope, _: Params) -> tuple[Kind, dict[str, Any], Params]:
        asked = parse_body(ValidateRequest, request.body)
        if asked.model is not None:  # before any training: a missing or other-version plug-in refuses here
            from components.ml.model import parameter_layout

            parameter_layout(asked.model)
        contract = load_contract(asked.contract, asked.version)
        if contract.ref == self.contract.ref and self._own_validation is not None:
            summary = self._own_validation.result()  # same contract, same rows: the start-up check answers
        else:
            summary = self._validate_frame(read_dataset(self.config.data, contract), contract)
            self._log_validation(contract.ref, summary)
        split = self._split(request.run_id) if self._rows(request.run_id)[1] is not None else None
        body = ValidationReply(summary=summary, manifest=self.manifest.model_dump(), validation_split=split)
        return Kind.VALIDATION, body.model_dump(), {}

    @staticmethod
    def _log_validation(ref: str, summary: ValidationSummary) -> None:
        if summary.success:
            log.info("validated against %s: passed", ref)
        else:
            log.warning("validated against %s: FAILED (%s)", ref, ", ".join(summary.failed))

    def _profile(self, request: Envelope, _: Params) -> tuple[Kind, dict[str, Any], Params]:
        x = self.features[self._rows(request.run_id)[0]].astype(np.float64)
        sums = {"sum": x.sum(axis=0), "sum_sq": np.square(x).sum(axis=0)}
        return Kind.PROFILE_RESULT, ProfileReply(count=len(x)).model_dump(), sums

    def _train(self, request: Envelope, tensors: Params) -> tuple[Kind, dict[str, Any], Params]:
        asked = parse_body(TrainRequest, request.body)
        with self._lock:
            outside = self.plans.outside_plan(request.run_id, request.round, asked.model, asked.training.local_epochs)
        if outside is not None:
            raise PolicyRefusal(f"refusing round {request.round}: {outside}")
        if not within_hours(self.plans.policy.training_hours, datetime.now().time()):
            raise PolicyRefusal(f"refusing round {request.round}: outside the training hours of this party's policy")
        budget = self.privacy_budget
        if budget is not None and (asked.epsilon_after_round is None or asked.epsilon_after_round > budget.epsilon):
            raise BudgetExceeded(
                f"refusing round {request.round}: epsilon after it would be {asked.epsilon_after_round} "
                f"(none = not differentially private), this dataset's budget is {budget.epsilon}"
            )
        from components.ml.model import parameter_layout
        from components.ml.training import train_local

        started = time.perf_counter()
        rows = self._rows(request.run_id)[0]
        features, labels = self.features[rows], self.labels[rows]
        params, result = train_local(asked.model, tensors, features, labels, asked.training, request.round)
        body = UpdateReply(
            num_examples=result.num_examples,
            metrics={"train_loss": result.loss},
            seconds=time.perf_counter() - started,
        )
        log.info(
            "run %s round %d: trained on %d rows, loss %.4f",
            request.run_id,
            request.round,
            result.num_examples,
            result.loss,
        )
        if asked.local_privacy is not None:  # local DP: what leaves this party is already noised
            rng = np.random.default_rng()
            frozen = standardization.fitted_names(params)
            dp = asked.local_privacy
            params = privatize_update(params, tensors, dp.clip_norm, dp.noise_multiplier, rng, frozen=frozen)
        if asked.secagg_bundle is not None:  # send only a masked vector; the coordinator learns just the sum
            bundle = parse_body(ShareBundle, asked.secagg_bundle)
            vector = encode_update(params, parameter_layout(asked.model), result.num_examples)
            masked = self._secagg_client(request).masked_input(bundle, vector)
            return Kind.UPDATE, body.model_dump(), {"masked": np.frombuffer(masked.masked, dtype="<u8")}
        return Kind.UPDATE, body.model_dump(), params

    def _glm_sums(self, request: Envelope, tensors: Params) -> tuple[Kind, dict[str, Any], Params]:
        asked = parse_body(GlmSumsRequest, request.body)
        rows = self._rows(request.run_id)[0]
        sums = glm_sums(asked, tensors, self.features[rows], self.labels[rows], self.config.disclosure)
        masked = None
        if asked.secagg_bundle is not None:  # only the masked vector leaves; the coordinator learns just the total
            client = self._secagg_client(request)
            vector = secure_vector(sums, client.config.codec)
            masked_input = client.masked_input(parse_body(ShareBundle, asked.secagg_bundle), vector)
            masked = np.frombuffer(masked_input.masked, dtype="<u8")
        log.info("GLM iteration %d: sent the sums of %d rows", request.round, sums.count)
        return Kind.GLM_SUMS_RESULT, *glm_reply(sums, masked)

    def _stats(self, request: Envelope, _: Params) -> tuple[Kind, dict[str, Any], Params]:
        stats = party_stats(request.body, self.frame, list(self.contract.features), self.config.disclosure)
        withheld = [name for name, figures in stats.features.items() if isinstance(figures, Suppressed)]
        log.info(
            "statistics sent for %d features, suppressed for %d", len(stats.features) - len(withheld), len(withheld)
        )
        return Kind.STATS_RESULT, stats.model_dump(), {}

    # ---- secure aggregation (one SecAggClient per run and round) ----
    def _secagg_client(self, request: Envelope) -> SecAggClient:
        if self._secagg is None or self._secagg[0] != (request.run_id, request.round):
            raise ProtocolError("no secure-aggregation round in progress for this run and round", code="secagg")
        return self._secagg[1]

    def _secagg_setup(self, request: Envelope, _: Params) -> tuple[Kind, dict[str, Any], Params]:
        config = parse_body(SecAggConfig, request.body.get("config", {}))
        client = SecAggClient(self.config.name, config)
        self._secagg = ((request.run_id, request.round), client)
        return Kind.SECAGG_KEYS, client.advertise_keys().model_dump(mode="json"), {}

    def _secagg_share(self, request: Envelope, _: Params) -> tuple[Kind, dict[str, Any], Params]:
        roster = parse_body(KeyRoster, request.body.get("roster", {}))
        return Kind.SECAGG_SHARES, self._secagg_client(request).share_keys(roster).model_dump(mode="json"), {}

    def _secagg_reveal(self, request: Envelope, _: Params) -> tuple[Kind, dict[str, Any], Params]:
        unmask = parse_body(UnmaskRequest, request.body.get("request", {}))
        shares = self._secagg_client(request).unmask(unmask)
        self._secagg = None
        return Kind.SECAGG_REVEAL, shares.model_dump(mode="json"), {}

    def _evaluate(self, request: Envelope, tensors: Params) -> tuple[Kind, dict[str, Any], Params]:
        from components.ml.training import evaluate

        asked = parse_body(EvaluateRequest, request.body)
        training, validation = self._rows(request.run_id)
        rows = training if validation is None else validation
        features, labels = self.features[rows], self.labels[rows]
        measured = evaluate(asked.model, tensors, features, labels)
        reply = EvaluationReply(
            num_examples=len(labels),
            # a metric undefined on these rows (ROC AUC where one class is present) is left out, not sent as NaN
            metrics={name: value for name, value in measured.items() if math.isfinite(value)},
            validation_split=validation is not None,
        )
        return Kind.EVALUATION, reply.model_dump(), {}

    # ---- which rows ----
    def _split(self, run_id: str) -> ValidationSplit | None:
        """The validation split of ``run_id``: this party's own (party.yaml), else the one its accepted plan asks."""
        if self.config.validation is not None:
            return self.config.validation
        plan = self.plans.accepted_plan(run_id) if run_id else None
        return plan.validation if plan is not None else None

    def _rows(self, run_id: str) -> tuple[slice | np.ndarray, np.ndarray | None]:
        """(training, validation) rows of ``run_id``: every row (a view, no copy) and None without a split."""
        split = self._split(run_id)
        if split is None or split.held_out(len(self.frame)) == 0:
            return slice(None), None
        return split.indices(len(self.frame))

    # ---- messages ----
    def _resources(self) -> Resources:
        return Resources(
            cores=os.cpu_count() or 1,
            memory_mb=psutil.virtual_memory().total / 2**20,
            cpu_percent=psutil.cpu_percent(interval=None),
            versions=_versions(),
        )

    def profile(self) -> dict[str, Any]:
        """What registration tells the coordinator: manifest and resources, never rows."""
        return self._hello()

    def _hello(self) -> dict[str, Any]:
        hello = Hello(
            manifest=self.manifest.model_dump(), resources=self._resources(), privacy_budget=self.privacy_budget
        )
        return hello.model_dump()

    def _heartbeat(self) -> Envelope:
        run_id, round_number = self._current
        body = Heartbeat(
            busy=self._job is not None,
            run_id=run_id,
            round=round_number,
            resources=self._resources(),
        )
        return Envelope(kind=Kind.HEARTBEAT, sender=self.config.name, body=body.model_dump())

    def _log_run_end(self, envelope: Envelope) -> None:
        """The last line of a run in this party's log: how it ended and, when it failed, why."""
        try:
            ended = parse_body(RunEnded, envelope.body)
        except ProtocolError as error:
            log.warning("run %s ended (unreadable reason: %s)", envelope.run_id, error)
            return
        if ended.status == "failed":
            log.warning("run %s failed: %s", envelope.run_id, ended.reason or "no reason given")
        else:
            log.info("run %s %s", envelope.run_id, ended.status or "finished")

    def _error(self, request: Envelope, code: str, message: str) -> Envelope:
        body = ErrorReply(code=code[:64], message=message[:2000]).model_dump()
        return request.reply(Kind.ERROR, self.config.name, body)


@functools.cache
def _versions() -> dict[str, str]:
    """The library versions a heartbeat reports (read once: looking them up costs a millisecond each time)."""
    return {"torch": package_version("torch"), "numpy": np.__version__}


def announce(
    config: PartyConfig,
    kind: Kind,
    body: dict[str, Any],
    timeout_s: float = 30.0,
    dealer: DealerFactory = DealerEndpoint,
) -> dict[str, Any]:
    """Send one REGISTER (with the profile) or LEAVE and wait for the coordinator's acknowledgement."""
    endpoint = dealer(config.coordinator, config.coordinator_public_key, read_keypair(config.secret_key_file))
    audit = AuditLog(config.audit_log) if config.audit_log else None
    try:
        request = Envelope(kind=kind, sender=config.name, body=body)
        frames = encode(request)
        if audit is not None:
            audit.sent(request, frames)
        endpoint.send(frames)
        if audit is not None:
            audit.write_head()
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            received = endpoint.receive(timeout_s=remaining)
            if received is None:
                break
            reply, _ = decode(received)
            if reply.reply_to == request.message_id:
                if reply.kind == Kind.ERROR:
                    raise ProtocolError(f"coordinator refused: {reply.body}", code="refused")
                return reply.body
        raise PartyUnavailable(
            f"no answer from {config.coordinator} within {timeout_s:.0f}s "
            "(is a federation running, and is this party's key in its config?)"
        )
    finally:
        endpoint.close()
