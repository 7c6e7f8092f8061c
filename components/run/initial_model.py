"""Round 0's model: a fresh model whose input standardisation is fitted from the parties' per-feature sums."""

from __future__ import annotations

from components.core import standardization
from components.core.contract import Contract
from components.core.errors import ProtocolError
from components.core.model_spec import ModelSpec
from components.core.params import Params
from components.core.protocol import Envelope, Kind
from components.core.protocol.bodies import ProfileReply, ProfileRequest, parse_body
from components.core.update_checks import check_layout
from components.ml.model import build_model, get_params
from components.run.coordinator import Coordinator
from components.run.exchanges import require_answers
from components.run.validation import refuse_contract_mismatches


def initial_model(
    coordinator: Coordinator,
    parties: list[str],
    spec: ModelSpec,
    contract: Contract,
    rows_validated: dict[str, int],
    run_id: str,
    timeout_s: float,
    min_parties: int,
) -> Params:
    """Ask for count, sum and sum of squares per feature; a count that differs from the rows the party
    validated this run is refused (the coordinator believes no claim it can check)."""
    layout = {"sum": ((spec.n_features,), "float64"), "sum_sq": ((spec.n_features,), "float64")}

    def check(envelope: Envelope, tensors: Params) -> None:
        check_layout(tensors, layout)
        count = parse_body(ProfileReply, envelope.body).count
        expected = rows_validated.get(envelope.sender)
        if expected is not None and count != expected:
            raise ProtocolError(
                f"profile counts {count} rows, but {envelope.sender} validated {expected} rows this run", code="claim"
            )

    body = ProfileRequest(contract_hash=contract.content_hash).model_dump()
    exchange = coordinator.exchange(parties, Kind.PROFILE, run_id, 0, body, timeout_s=timeout_s, check=check)
    refuse_contract_mismatches(exchange.errors, contract)
    require_answers(exchange, "profiling", min_parties)
    replies = exchange.replies.values()
    count = sum(parse_body(ProfileReply, r.envelope.body).count for r in replies)
    total = sum(r.tensors["sum"] for r in replies)
    total_sq = sum(r.tensors["sum_sq"] for r in replies)
    return standardization.fit(get_params(build_model(spec)), count, total, total_sq)
