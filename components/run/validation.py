"""Contract validation at every party: each checks its own rows and sends back only a summary and a manifest."""

from __future__ import annotations

from components.core.contract import Contract
from components.core.protocol import Kind
from components.core.protocol.bodies import ValidateRequest, ValidationReply, parse_body
from components.run.coordinator import Coordinator
from components.run.exchanges import require_answers
from components.run.records import ValidationResult


def validate_parties(
    coordinator: Coordinator, parties: list[str], contract: Contract, run_id: str, timeout_s: float, min_parties: int
) -> ValidationResult:
    """Ask ``parties`` to validate their data against ``contract``; PartyUnavailable below ``min_parties`` answers."""
    body = ValidateRequest(contract=contract.name, version=contract.version).model_dump()
    exchange = coordinator.exchange(parties, Kind.VALIDATE, run_id, 0, body, timeout_s=timeout_s)
    require_answers(exchange, "validation", min_parties)
    answers = {party: parse_body(ValidationReply, reply.envelope.body) for party, reply in exchange.replies.items()}
    return ValidationResult(
        summaries={party: answer.summary for party, answer in answers.items()},
        manifests={party: answer.manifest for party, answer in answers.items()},
    )
