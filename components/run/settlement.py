"""The settlement: valuation of every round's updates, then the reward split and reward models, then reputation.

What it releases must not spend privacy nobody accounted for. Under central differential privacy the
coordinator holds raw individual updates and only their noised aggregate is private, so nothing
computed from individual updates (contributions, reward models) is released: the reason goes into
the summary and rewards fall back to the participation floor alone. Under local DP each update is
itself private, and valuing it is post-processing. Under secure aggregation only sums exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from components.adapters.checkpoints import RunCheckpoints
from components.core.config import FederationConfig
from components.core.kernels import weighted_mean
from components.core.params import Params
from components.core.reputation import ReputationInputs, update_reputation
from components.core.rewards import allocate_rewards, model_reward_tiers, paid_contributions
from components.core.strategies.base import PrivacyAccount
from components.core.valuation import methods_under_secure_aggregation
from components.core.valuation.run_totals import RoundGame, ranks_within_error, value_run
from components.run.records import Contributions, ReputationChange, Rewards
from components.run.summary import ModelReward, RoundRow, ValuationReport

UPDATES_NOT_KEPT = (
    "none: party_updates is 'none': each update went into the round's aggregate and was not kept, so there are "
    "no per-party updates to value (keep them with party_updates 'keep' or 'until_settled')"
)


def individual_updates_withheld(secure: bool, privacy: PrivacyAccount | None, kept: bool = True) -> str | None:
    """Why per-party updates may not be valued or released in this run, or None when they may
    (``kept``: the run keeps each round's updates, ``party_updates`` is not 'none')."""
    if secure:
        available = methods_under_secure_aggregation() or "none"
        return (
            "none: with secure aggregation the coordinator holds only each round's sum, and every valuation "
            f"method needs per-party updates (available under secure aggregation: {available})"
        )
    if privacy is not None and not privacy.party_updates_private:
        return (
            "none: under central differential privacy only the noised aggregate is private; contributions and "
            "reward models computed from raw per-party updates would spend privacy the accountant does not count "
            "(use dp mode 'local' to value DP-protected updates)"
        )
    return None if kept else UPDATES_NOT_KEPT


def contribution_statement(report: ValuationReport) -> str:
    """One paragraph a stakeholder can read: what the numbers are, from which rounds, and how sure they are."""
    valued, skipped = len(report.rounds_valued), len(report.rounds_skipped)
    return (
        f"A party's contribution is its {report.method} value in the coalition game of each valued round "
        f"(utility: {report.utility}), summed over {valued} of {valued + skipped} rounds; rounds whose global "
        f"utility moved by less than {report.min_round_gain:.0%} of the run's largest move are not valued. "
        "± is two standard errors (across rounds and permutations); parties whose intervals overlap are equal "
        "within error and share a rank."
    )


class Settlement:
    """Values, rewards and reputations of one run, from the updates and rounds the coordinator already holds."""

    def __init__(
        self,
        config: FederationConfig,
        checkpoints: RunCheckpoints,
        evaluate: Callable[[Params], Mapping[str, float]],
        withheld: str | None,
        reputation_of: Callable[[str], float],
    ) -> None:
        self.config = config
        self.checkpoints = checkpoints
        self.evaluate = evaluate
        self.withheld = withheld
        self.reputation_of = reputation_of

    def value(self, rounds: list[RoundRow], parties: list[str]) -> Contributions:
        """Each party's value in every round that moved the global model (stored updates, no retraining), summed.

        Rounds whose utility moved by less than ``valuation.min_round_gain`` of the run's largest move are
        not valued (``components/core/valuation/run_totals.py``); the report says which, and how sure each
        total is.
        """
        if self.withheld is not None:
            return Contributions(method=self.withheld)
        spec = self.config.valuation
        games = (
            RoundGame(row.round, self.checkpoints.load_updates(row.round), self.checkpoints.load_global(row.round - 1))
            for row in sorted(rounds, key=lambda r: r.round)
        )
        run = value_run(spec.method, games, self._utility, spec.options, parties, spec.min_round_gain)
        totals, errors = run.totals, run.errors
        took_part = {party for row in rounds for party in row.participants}
        report = ValuationReport(
            method=spec.method,
            utility=self._utility_text(),
            rounds_valued=run.valued,
            rounds_skipped=run.skipped,
            min_round_gain=spec.min_round_gain,
            errors=errors,
            ranks=ranks_within_error({p: v for p, v in totals.items() if p in took_part}, errors),
        )
        report.statement = contribution_statement(report)
        return Contributions(method=spec.method, per_round=run.per_round, totals=totals, report=report)

    def _utility(self, params: Params) -> float:
        """A coalition model's utility: the configured held-out metric, with loss negated (higher is better)."""
        metric = self.config.valuation.metric
        value = self.evaluate(params)[metric]
        return -value if metric == "loss" else value

    def _utility_text(self) -> str:
        metric = self.config.valuation.metric
        named = "held-out loss, negated" if metric == "loss" else f"held-out {metric}"
        return f"{named}, of the FedAvg of a coalition's updates in a round"

    def reward(
        self,
        contributions: Contributions,
        rounds: list[RoundRow],
        parties: list[str],
        save_model: Callable[[str, Params], object],
    ) -> Rewards:
        """The pool split by contribution above a participation floor; reward models from each party's tier.

        Parties equal within error are paid (and tiered) on their group's mean (``paid_contributions``). A
        party with a refused update, or that took part in no round, gets no share, no model and no place
        in another party's tier.
        """
        refused = {
            party
            for row in rounds
            for party, reason in row.rejected.items()
            if not reason.startswith("no ") and party in parties
        }
        took_part = {party for row in rounds for party in row.participants}
        excluded = refused | {party for party in parties if party not in took_part}
        values = {p: contributions.totals.get(p, 0.0) for p in parties}
        errors = contributions.report.errors if contributions.report else {}
        eligible = [p for p in parties if p not in excluded]
        values.update(paid_contributions({p: values[p] for p in eligible}, errors))
        cfg = self.config.rewards
        shares = allocate_rewards(cfg.pool, values, excluded, cfg.participation_floor)
        tiers = model_reward_tiers(values, excluded)
        return Rewards(shares=shares, models=self._reward_models(tiers, rounds, save_model))

    def _reward_models(
        self, tiers: Mapping[str, list[str]], rounds: list[RoundRow], save_model: Callable[[str, Params], object]
    ) -> dict[str, ModelReward]:
        """Aggregate each party's reward model from its tier's last-round updates and evaluate it."""
        if self.withheld is not None or not rounds:
            return {party: ModelReward(sources=sources) for party, sources in tiers.items()}
        last = max(row.round for row in rounds)
        updates = {u.party: u for u in self.checkpoints.load_updates(last)}
        models = {}
        for party, sources in tiers.items():
            chosen = [updates[p] for p in sources if p in updates]
            if not chosen:
                models[party] = ModelReward(sources=sources)
                continue
            params = weighted_mean([u.params for u in chosen], [u.num_examples for u in chosen])
            save_model(party, params)
            metrics = dict(self.evaluate(params))
            models[party] = ModelReward(sources=sources, accuracy=metrics.get("accuracy"), metrics=metrics)
        return models

    def reputation(
        self,
        contributions: Contributions,
        rounds: list[RoundRow],
        parties: list[str],
        rejected_messages: Mapping[str, int],
    ) -> list[ReputationChange]:
        """Fold this run's answer rate, rejected messages and contribution share into each party's reputation."""
        errors = contributions.report.errors if contributions.report else {}
        took_part = {party for row in rounds for party in row.participants}
        paid = paid_contributions(  # equal within error counts as equal here too
            {p: v for p, v in contributions.totals.items() if p in took_part}, errors
        )
        positive = {p: max(v, 0.0) for p, v in paid.items()}
        total = sum(positive.values())
        changes = []
        for party in parties:
            answered = sum(party in row.participants for row in rounds)
            inputs = ReputationInputs(
                rounds_answered=answered,
                rounds_missed=len(rounds) - answered,
                rejected_messages=rejected_messages.get(party, 0),
                contribution_share=positive.get(party, 0.0) / total if total > 0 else 0.0,
                parties=len(parties),
            )
            new = update_reputation(self.reputation_of(party), inputs)
            changes.append(ReputationChange(party=party, reputation=new, inputs=inputs.model_dump()))
        return changes
