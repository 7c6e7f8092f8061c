"""The coordinator's side of the wire: admitted parties, requests out, replies matched and checked.

Everything a party sends is decoded and checked here; a bad message is counted, logged and
answered with a typed error, and never reaches aggregation.

A party that floods is throttled, never obeyed: every message it sends is still read, checked and
counted (``rejected``, and per error code in ``rejected_codes``), but the replies the I/O thread
sends a party (typed errors, welcomes) come from a token bucket per party (``reply_burst``, refilled
at ``reply_rate_per_s``); beyond it a refusal is counted in ``throttled`` and not answered. Replies
the transport could not hand to a peer that stopped reading are counted in ``dropped_replies``.
Well-formed unasked messages (hello, heartbeat, register, bye) come from a bucket per party too (``message_burst``,
refilled at ``message_rate_per_s``): beyond it they are counted in ``dropped`` and go no further (no liveness
update, no store write); after ``flood_disconnect_after`` of them the party is disconnected for the rest of the
run (its key gets nothing back) and one ``flood`` refusal costs it reputation. Replies to requests are never
rate-limited. Log lines per party are rate-limited the same way: what is not logged one by one is logged as a
counted summary, and ``close`` logs each party's totals by error code. An honest party (a hello,
a heartbeat every few seconds, one reply per request) never comes near either budget.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.adapters.transport import RouterEndpoint
from components.core.errors import EdgeUnavailable, ProtocolError
from components.core.liveness import Liveness
from components.core.params import Params
from components.core.ports import KeyPair, Peer, RouterFactory
from components.core.protocol import Envelope, Kind, TensorFrames, decode, encode, frames_size
from components.core.protocol.bodies import ErrorReply, Heartbeat, Hello, parse_body
from components.core.protocol.messages import HELLO_REQUIRED, REQUEST_REPLY

log = logging.getLogger(__name__)

COORDINATOR = "coordinator"
HELLO_ASK_EVERY_S = 1.0
TENSOR_KINDS = frozenset({Kind.UPDATE, Kind.PROFILE_RESULT, Kind.GLM_SUMS_RESULT})  # party messages with tensors
RATE_LIMITED = frozenset({Kind.HELLO, Kind.HEARTBEAT, Kind.REGISTER, Kind.BYE})  # what a party sends unasked
ReplyCheck = Callable[[Envelope, Params], None]


@dataclass
class Reply:
    party: str
    envelope: Envelope
    tensors: Params
    size: int


@dataclass
class Exchange:
    """Result of one request sent to several parties."""

    replies: dict[str, Reply]
    errors: dict[str, str]  # party -> why its reply was refused or what error it sent
    missing: list[str]  # parties that did not answer before the deadline
    bytes_up: int
    bytes_down: int


@dataclass
class _Pending:
    party: str
    expected: Kind
    run_id: str
    round: int
    check: ReplyCheck | None
    keep_tensors: bool = True
    reply: Reply | None = None
    error: str | None = None


@dataclass
class PartyInfo:
    routing_id: bytes | None = None
    hello: Hello | None = None
    last_heartbeat: Heartbeat | None = None


@dataclass
class _Bucket:
    """A token bucket: ``take`` succeeds ``capacity`` times at once, then ``rate`` times per second."""

    capacity: float
    rate: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.stamp = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class Coordinator:
    """Owns the ROUTER endpoint; thread-safe ``exchange`` for the flow's tasks."""

    bind: str
    keys: KeyPair
    party_keys: Mapping[str, str]  # public key -> party name
    liveness_timeout_s: float = 30.0
    max_message_bytes: int = 256 << 20
    on_event: Callable[[str, str, dict[str, Any]], None] | None = None
    boundary_checks: dict[Kind, ReplyCheck] = field(default_factory=dict)  # run on every message of a kind
    rejected: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)
    router: RouterFactory = RouterEndpoint  # the in-memory twin in unit tests
    reply_burst: int = 20  # replies (errors, welcomes) a party gets at once from the I/O thread ...
    reply_rate_per_s: float = 5.0  # ... and per second after that; beyond, refusals are counted, not answered
    log_burst: int = 20  # rejection lines logged one by one per party at once ...
    log_rate_per_s: float = 0.5  # ... and per second after that; the rest go into counted summaries
    log_summary_every_s: float = 10.0
    rejected_codes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (party, error code) -> messages
    throttled: Counter[str] = field(default_factory=Counter)  # replies not sent: the party's reply budget was spent
    dropped_replies: Counter[str] = field(default_factory=Counter)  # replies the transport could not hand over
    message_burst: int = 100  # unasked messages (hello, heartbeat, register, bye) a party may send at once ...
    message_rate_per_s: float = 20.0  # ... and per second after that; beyond, they are dropped and counted
    flood_disconnect_after: int = 2000  # dropped messages after which the party is disconnected for this run
    dropped: Counter[str] = field(default_factory=Counter)  # unasked messages over the party's rate, not handled
    disconnected: set[str] = field(default_factory=set)  # parties disconnected for flooding
    max_inflight_bytes: int = 256 << 20  # requests with tensors unanswered at once, in bytes (one at least)

    def __post_init__(self) -> None:
        self.liveness = Liveness(self.liveness_timeout_s)
        self.parties: dict[str, PartyInfo] = {name: PartyInfo() for name in self.party_keys.values()}
        self._pending: dict[str, _Pending] = {}
        self._changed = threading.Condition()
        self.admitted: set[str] = set(self.party_keys)
        self._reply_budgets: dict[str, _Bucket] = {}
        self._message_budgets: dict[str, _Bucket] = {}
        self._log_budgets: dict[str, _Bucket] = {}
        self._unlogged: dict[str, Counter[str]] = {}  # party -> what was not logged line by line, by label
        self._summarised_at: dict[str, float] = {}
        self._hello_asked: dict[str, float] = {}  # party -> when it was last asked to say hello
        self._closed = False
        self._endpoint = self.router(
            self.bind,
            self.keys,
            is_allowed=lambda key: key in self.admitted,
            on_message=self._on_message,
            max_message_bytes=self.max_message_bytes,
        )
        self.endpoint = self._endpoint.endpoint

    # ---- incoming (I/O thread) ----
    def _on_message(self, peer: Peer, frames: list[Any]) -> None:
        party = self.party_keys.get(peer.public_key)
        if party is None or peer.public_key not in self.admitted:
            return  # ZAP already refuses unknown keys; nothing is ever sent back to them
        size = frames_size(frames)
        try:
            envelope, tensors = decode(frames, max_bytes=self.max_message_bytes)
            if envelope.sender != party:
                raise ProtocolError(f"sender {envelope.sender!r} does not match key of {party!r}", code="sender")
            self._dispatch(party, peer, envelope, tensors, size)
        except ProtocolError as error:
            self._reject(party, peer.routing_id, error, reply_to=None)
        with self._changed:
            self._changed.notify_all()

    def _dispatch(self, party: str, peer: Peer, envelope: Envelope, tensors: Params, size: int) -> None:
        now = time.monotonic()
        info = self.parties[party]
        if tensors and envelope.kind not in TENSOR_KINDS:
            raise ProtocolError(f"a {envelope.kind.value} message carries no tensors", code="tensor")
        hello = parse_body(Hello, envelope.body) if envelope.kind in (Kind.HELLO, Kind.REGISTER) else None
        beat = parse_body(Heartbeat, envelope.body) if envelope.kind == Kind.HEARTBEAT else None
        if envelope.kind in RATE_LIMITED and not self._budget(  # a malformed one was refused above, and counted
            self._message_budgets, party, self.message_burst, self.message_rate_per_s
        ):
            self._drop(party, peer)
            return
        if (check := self.boundary_checks.get(envelope.kind)) is not None:
            check(envelope, tensors)
        if envelope.kind == Kind.HELLO:
            info.hello = hello
            info.routing_id = peer.routing_id  # replies go to the connection that said hello last
            self.liveness.observe(party, now)
            self._reply(party, peer.routing_id, envelope.reply(Kind.WELCOME, COORDINATOR))
            self._emit(party, "hello", hello.model_dump() if hello else {})
        elif envelope.kind == Kind.HEARTBEAT and beat is not None:
            info.last_heartbeat = beat
            self.liveness.observe(party, now, busy=beat.busy)
            # e.g. this coordinator restarted: ask the party to introduce itself, once a second at most (heartbeats
            # the party queued while no coordinator listened arrive in a burst, and one hello answers them all)
            if info.hello is None and now - self._hello_asked.get(party, -math.inf) >= HELLO_ASK_EVERY_S:
                self._hello_asked[party] = now
                body = ErrorReply(code=HELLO_REQUIRED, message="send hello first").model_dump()
                self._reply(party, peer.routing_id, envelope.reply(Kind.ERROR, COORDINATOR, body))
            self._emit(party, "heartbeat", {"resources": beat.resources.model_dump()})
        elif envelope.kind == Kind.BYE:
            self.liveness.leave(party)
            self._abandon(party, "the party disconnected (bye)")
            self._emit(party, "bye", {})
        elif envelope.kind == Kind.REGISTER and hello is not None:
            self._emit(party, "register", hello.model_dump())
            self._reply(party, peer.routing_id, envelope.reply(Kind.WELCOME, COORDINATOR, {"registered": party}))
        elif envelope.kind == Kind.LEAVE:
            self._reply(party, peer.routing_id, envelope.reply(Kind.WELCOME, COORDINATOR, {"left": party}))
            self.liveness.leave(party)
            self.admitted.discard(peer.public_key)  # from now on this key gets nothing back
            self._abandon(party, "the party left the federation")
            self._emit(party, "leave", {})
        elif envelope.kind in (*REQUEST_REPLY.values(), Kind.ERROR):
            self.liveness.observe(party, now)
            self._settle(party, envelope, tensors, size)
        else:
            raise ProtocolError(f"a party may not send {envelope.kind.value!r}", code="kind")

    def _drop(self, party: str, peer: Peer) -> None:
        """An unasked message over the party's rate: counted, not parsed, stored or answered. A party that keeps
        flooding is disconnected for the rest of the run: its key gets nothing back, and the refusal costs it
        reputation."""
        self.dropped[party] += 1
        if self.dropped[party] < self.flood_disconnect_after or party in self.disconnected:
            return
        self.disconnected.add(party)
        self.admitted.discard(peer.public_key)
        self.liveness.leave(party)
        self._abandon(party, "disconnected for flooding")
        self.count_refusal(
            party,
            ProtocolError(
                f"{self.dropped[party]} messages over the rate of {self.message_rate_per_s:g}/s: "
                "disconnected for the rest of the run",
                code="flood",
            ),
        )
        self._emit(party, "flood", {})

    def _abandon(self, party: str, why: str) -> None:
        """Settle every open request to ``party`` with ``why``: an exchange waits for it no longer."""
        with self._changed:
            for pending in self._pending.values():
                if pending.party == party and pending.reply is None and pending.error is None:
                    pending.error = why

    def _settle(self, party: str, envelope: Envelope, tensors: Params, size: int) -> None:
        """Match a reply to its open request. Under the lock: a reply the request's ``check`` took (e.g. folded
        into a running sum) is settled in the same step, so the exchange returns either both or neither."""
        with self._changed:
            pending = self._pending.get(envelope.reply_to or "")
            if pending is None or pending.reply is not None or pending.error is not None:
                self.late[party] += 1
                if self._may_log(party, "late"):
                    log.info("discarded a late or unexpected %s from %s", envelope.kind.value, party)
                return
            if pending.party != party:
                raise ProtocolError("reply to a request sent to another party", code="reply_to")
            if envelope.run_id != pending.run_id or envelope.round != pending.round:
                raise ProtocolError(
                    f"reply for run {envelope.run_id!r} round {envelope.round}, expected "
                    f"{pending.run_id!r} round {pending.round}",
                    code="ids",
                )
            if envelope.kind == Kind.ERROR:
                error = parse_body(ErrorReply, envelope.body)
                pending.error = f"{error.code}: {error.message}"
                return
            if envelope.kind != pending.expected:
                raise ProtocolError(f"expected {pending.expected.value}, got {envelope.kind.value}", code="kind")
            try:
                if pending.check is not None:
                    pending.check(envelope, tensors)
            except ProtocolError as error:
                pending.error = f"{error.code}: {error}"
                raise
            kept = tensors if pending.keep_tensors else {}  # not kept: the check took what it needed
            pending.reply = Reply(party=party, envelope=envelope, tensors=kept, size=size)

    def count_refusal(self, party: str, error: ProtocolError) -> None:
        """Count, log (within the party's log budget) and report a refused message or claim of ``party``."""
        self.rejected[party] += 1
        self.rejected_codes[(party, error.code)] += 1
        if self._may_log(party, f"code {error.code}"):
            log.warning("rejected a message from %s (code %s): %s", party, error.code, error)
        self._emit(party, "rejected", {"code": error.code, "message": str(error)})

    def _reject(self, party: str, routing_id: bytes, error: ProtocolError, reply_to: str | None) -> None:
        self.count_refusal(party, error)
        if not self._budget(self._reply_budgets, party, self.reply_burst, self.reply_rate_per_s):
            self.throttled[party] += 1  # counted above, not answered: nobody is owed one reply per message sent
            return
        body = ErrorReply(code=error.code, message=str(error)[:2000]).model_dump()
        self._send_reply(party, routing_id, Envelope(kind=Kind.ERROR, sender=COORDINATOR, reply_to=reply_to, body=body))

    def _reply(self, party: str, routing_id: bytes, envelope: Envelope) -> None:
        """Answer a party from the I/O thread, within its reply budget; never waits."""
        if self._budget(self._reply_budgets, party, self.reply_burst, self.reply_rate_per_s):
            self._send_reply(party, routing_id, envelope)
        else:
            self.throttled[party] += 1

    def _send_reply(self, party: str, routing_id: bytes, envelope: Envelope) -> None:
        if self._endpoint.send(routing_id, encode(envelope)) is False:  # a twin may return None: sent
            self.dropped_replies[party] += 1

    def _budget(self, budgets: dict[str, _Bucket], party: str, burst: int, rate: float) -> bool:
        bucket = budgets.get(party)
        if bucket is None:
            bucket = budgets[party] = _Bucket(burst, rate)
        return bucket.take(time.monotonic())

    def _may_log(self, party: str, label: str) -> bool:
        """True if this line about ``party`` may be logged; otherwise it is counted under ``label``
        and a summary of what was not logged goes out every ``log_summary_every_s``."""
        if self._budget(self._log_budgets, party, self.log_burst, self.log_rate_per_s):
            return True
        unlogged = self._unlogged.get(party)
        if unlogged is None:
            unlogged = self._unlogged[party] = Counter()
        unlogged[label] += 1
        now = time.monotonic()
        if now - self._summarised_at.setdefault(party, now) >= self.log_summary_every_s:
            self._log_unlogged(party)
        return False

    def _log_unlogged(self, party: str) -> None:
        unlogged = self._unlogged.pop(party, None)
        self._summarised_at[party] = time.monotonic()
        if unlogged:
            log.warning(
                "%d more messages from %s not logged one by one (flooding): %s",
                sum(unlogged.values()),
                party,
                _counts(unlogged),
            )

    def accounting(self, party: str) -> str:
        """One line on what ``party`` sent that was refused, and what it was (not) answered."""
        codes = Counter({code: n for (who, code), n in self.rejected_codes.items() if who == party})
        return (
            f"rejections from {party}: {sum(codes.values())} in total, {self.throttled[party]} replies throttled, "
            f"{self.dropped_replies[party]} replies dropped by the transport, {self.late[party]} late, "
            f"{self.dropped[party]} unasked messages over its rate dropped; "
            f"by code: {_counts(codes) or 'none'}"
        )

    def _emit(self, party: str, event: str, detail: dict[str, Any]) -> None:
        if self.on_event is not None:
            try:
                self.on_event(party, event, detail)
            except Exception:
                log.exception("event hook failed")

    # ---- outgoing (any thread) ----
    def _send(self, routing_id: bytes, envelope: Envelope, tensors: TensorFrames | None = None) -> int:
        """Queue a request; EdgeUnavailable if the transport cannot take it (it waits only briefly)."""
        frames = encode(envelope, tensors)
        self._endpoint.send(routing_id, frames)
        return frames_size(frames)

    def wait_for_parties(self, names: list[str], minimum: int, timeout_s: float, wait_for_all: bool) -> list[str]:
        """The connected parties among ``names``, waiting up to ``timeout_s`` for all of them
        (``wait_for_all``) or for ``minimum`` of them; [] when fewer than ``minimum`` came."""
        deadline = time.monotonic() + timeout_s
        wanted = len(names) if wait_for_all else minimum
        with self._changed:
            while True:
                ready = [n for n in names if self.is_connected(n)]
                remaining = deadline - time.monotonic()
                if len(ready) >= wanted or remaining <= 0:
                    return ready if len(ready) >= minimum else []
                self._changed.wait(min(remaining, 0.5))

    def is_connected(self, party: str) -> bool:
        info = self.parties.get(party)
        return bool(info and info.routing_id and info.hello) and party in self.liveness.alive([party], time.monotonic())

    def exchange(
        self,
        parties: list[str],
        kind: Kind,
        run_id: str,
        round_number: int,
        body: dict[str, Any],
        tensors: Mapping[str, np.ndarray] | None = None,
        timeout_s: float = 60.0,
        check: ReplyCheck | None = None,
        bodies: Mapping[str, dict[str, Any]] | None = None,
        keep_tensors: bool = True,
    ) -> Exchange:
        """Send one request to each party and collect replies until all answered or the deadline.

        ``bodies`` gives some parties their own body (merged over ``body``). With ``keep_tensors`` False the
        replies keep no tensors: ``check`` saw each reply's tensors and took what it needed (a running sum).

        Requests with tensors go out as replies come back, at most ``max_inflight_bytes`` of them unanswered
        at once: each encrypted copy of a model in flight costs the coordinator a model's worth of memory, so a
        thousand parties get the model in waves, not at once. A party whose turn the deadline overtook is
        reported missing."""
        expected = REQUEST_REPLY[kind]
        laid_out = TensorFrames(tensors) if tensors else None  # once for every party
        sent: dict[str, str] = {}
        bytes_down = 0
        errors: dict[str, str] = {}
        waiting = deque(parties)
        deadline = time.monotonic() + timeout_s
        size = 0  # of one request: with tensors, at most max_inflight_bytes of them are unanswered at once

        def room(open_count: int) -> bool:
            return not tensors or open_count == 0 or open_count * size < self.max_inflight_bytes

        while True:
            while waiting and room(sum(1 for m in sent.values() if not self._settled(m))):
                party = waiting.popleft()
                own = {**body, **bodies[party]} if bodies and party in bodies else body
                sent_id, sent_size = self._request(
                    party, kind, expected, run_id, round_number, own, laid_out, check, keep_tensors, errors
                )
                if sent_id is not None:
                    sent[party], size = sent_id, sent_size
                    bytes_down += sent_size
            with self._changed:
                open_ids = [m for m in sent.values() if not self._settled(m)]
                remaining = deadline - time.monotonic()
                if (not open_ids and not waiting) or remaining <= 0:
                    results = {party: self._pending.pop(mid) for party, mid in sent.items()}
                    break
                if not waiting or not room(len(open_ids)):
                    self._changed.wait(min(remaining, 0.5))
        replies = {p: r.reply for p, r in results.items() if r.reply is not None}
        errors.update({p: r.error for p, r in results.items() if r.error is not None})
        missing = [p for p, r in results.items() if r.reply is None and r.error is None] + list(waiting)
        return Exchange(replies, errors, missing, sum(r.size for r in replies.values()), bytes_down)

    def _request(
        self,
        party: str,
        kind: Kind,
        expected: Kind,
        run_id: str,
        round_number: int,
        body: dict[str, Any],
        tensors: TensorFrames | None,
        check: ReplyCheck | None,
        keep_tensors: bool,
        errors: dict[str, str],
    ) -> tuple[str | None, int]:
        """Send one party its request: its message id and size, or (None, 0) with the reason in ``errors``."""
        info = self.parties[party]
        if info.routing_id is None:
            errors[party] = "not connected"
            return None, 0
        envelope = Envelope(kind=kind, run_id=run_id, round=round_number, sender=COORDINATOR, body=body)
        with self._changed:
            self._pending[envelope.message_id] = _Pending(party, expected, run_id, round_number, check, keep_tensors)
        try:
            return envelope.message_id, self._send(info.routing_id, envelope, tensors)
        except EdgeUnavailable as error:  # the party is reported, the others still get their request
            with self._changed:
                self._pending.pop(envelope.message_id, None)
            errors[party] = str(error)
            log.warning("could not send %s to %s: %s", kind.value, party, error)
            return None, 0

    def _settled(self, message_id: str) -> bool:
        pending = self._pending[message_id]
        return pending.reply is not None or pending.error is not None

    def broadcast(self, kind: Kind, run_id: str, body: dict[str, Any] | None = None) -> None:
        """Queue one message for every party that said hello; never raises, waits at most one brief send."""
        for party, info in self.parties.items():
            if info.routing_id is not None:
                try:
                    self._send(
                        info.routing_id,
                        Envelope(kind=kind, run_id=run_id, sender=COORDINATOR, body=body or {}),
                    )
                except EdgeUnavailable as error:  # the outbox is full or closed: the others would wait too
                    log.warning("could not broadcast %s (from %s on): %s", kind.value, party, error)
                    return
                log.debug("sent %s to %s", kind.value, party)

    def close(self) -> None:
        """Release the endpoint (bounded, whatever the peers do), then log each flooding party's totals."""
        if self._closed:
            return
        self._closed = True
        self._endpoint.close()
        for party in sorted(self._unlogged):
            self._log_unlogged(party)
        flooding = set(self.throttled) | set(self.dropped_replies) | set(self.dropped)
        for party in sorted({p for p, _ in self.rejected_codes} | flooding):
            log.warning("%s", self.accounting(party))


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{label}={n}" for label, n in sorted(counter.items()))
