"""Contract validation at every party: each checks its own rows and sends back only a summary and a manifest."""

from __future__ import annotations

from components.core.contract import CONTRACT_MISMATCH, Contract
from components.core.errors import ConfigError, ContractError
from components.core.model_spec import ModelSpec
from components.core.protocol import Kind
from components.core.protocol.bodies import ValidateRequest, ValidationReply, parse_body
from components.run.coordinator import Coordinator
from components.run.exchanges import require_answers
from components.run.records import ValidationResult


def validate_parties(
    coordinator: Coordinator,
    parties: list[str],
    contract: Contract,
    model: ModelSpec,
    run_id: str,
    timeout_s: float,
    min_parties: int,
) -> ValidationResult:
    """Ask ``parties`` to validate their data against ``contract``; PartyUnavailable below ``min_parties`` answers.

    A party holding another copy of the contract (another content hash) is a ContractError: a retry cannot fix it."""
    body = ValidateRequest(
        contract=contract.name, version=contract.version, contract_hash=contract.content_hash, model=model
    ).model_dump()
    exchange = coordinator.exchange(parties, Kind.VALIDATE, run_id, 0, body, timeout_s=timeout_s)
    refuse_contract_mismatches(exchange.errors, contract)
    refuse_unbuildable_models(exchange.errors, model)
    require_answers(exchange, "validation", min_parties)
    answers = {party: parse_body(ValidationReply, reply.envelope.body) for party, reply in exchange.replies.items()}
    return ValidationResult(
        summaries={party: answer.summary for party, answer in answers.items()},
        manifests={party: answer.manifest for party, answer in answers.items()},
        splits={party: answer.validation_split for party, answer in answers.items() if answer.validation_split},
    )


def refuse_contract_mismatches(errors: dict[str, str], contract: Contract) -> None:
    """ContractError naming every party that answered ``contract_mismatch`` (party -> ``code: message`` errors)."""
    prefix = f"{CONTRACT_MISMATCH}: "
    mismatched = {party: error.removeprefix(prefix) for party, error in errors.items() if error.startswith(prefix)}
    if mismatched:
        raise ContractError(
            f"{len(mismatched)} part{'y holds' if len(mismatched) == 1 else 'ies hold'} another copy of "
            f"{contract.ref} than the coordinator's {contract.content_hash}: "
            + "; ".join(f"{party}: {why}" for party, why in sorted(mismatched.items()))
        )


def refuse_unbuildable_models(errors: dict[str, str], model: ModelSpec) -> None:
    """ConfigError naming every party that cannot build the run's model (e.g. a plug-in it lacks or has in
    another version): parties answer that with a ``ConfigError`` reply, before any training."""
    prefix = "ConfigError: "
    refused = {party: error.removeprefix(prefix) for party, error in errors.items() if error.startswith(prefix)}
    if refused:
        what = f"plug-in {model.plugin.name}=={model.plugin.version}" if model.plugin else f"{model.kind} model"
        raise ConfigError(
            f"{len(refused)} part{'y' if len(refused) == 1 else 'ies'} cannot build the {what}: "
            + "; ".join(f"{party}: {why}" for party, why in sorted(refused.items()))
        )
