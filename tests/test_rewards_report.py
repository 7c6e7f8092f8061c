"""`consortia rewards` reads at 80 columns for a 40-round run: totals, rewards and reward models first."""

import io

from rich.console import Console

from components.run.summary import ModelReward, RunSummary, ValuationReport
from flows.rewards_report import rewards_report


def forty_round_summary() -> RunSummary:
    parties = ["alpha", "beta", "gamma", "delta", "epsilon"]
    valued = [*range(1, 7), 9]
    per_round = {r: {p: 0.01 * (i + 1) / r for i, p in enumerate(parties)} for r in valued}
    totals = {p: sum(per_round[r][p] for r in valued) for p in parties}
    return RunSummary(
        run_id="breast-cancer-demo-20261201-120000-abcdef",
        started_at="2026-12-01T12:00:00",
        config={},
        contributions=totals,
        round_contributions=per_round,
        valuation_method="gtg",
        valuation=ValuationReport(
            method="gtg",
            utility="held-out loss, negated, of the FedAvg of a coalition's updates in a round",
            rounds_valued=valued,
            rounds_skipped=[r for r in range(1, 41) if r not in valued],
            min_round_gain=0.1,
            errors=dict.fromkeys(parties, 0.004),
            ranks={"epsilon": 1, "delta": 1, "gamma": 3, "beta": 4, "alpha": 5},
            statement="A party's contribution is its gtg value ...",
        ),
        rewards={p: 20.0 for p in parties},
        model_rewards={
            p: ModelReward(sources=parties[: i + 1], accuracy=0.9, metrics={"accuracy": 0.9 + i / 100, "loss": 0.25})
            for i, p in enumerate(parties)
        },
        reputation=dict.fromkeys(parties, 0.61),
    )


def printed(summary: RunSummary, per_round: bool = False) -> list[str]:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(*rewards_report(summary, per_round=per_round))
    return console.export_text().splitlines()


def test_forty_rounds_fit_80_columns_with_totals_and_reward_models_first():
    lines = printed(forty_round_summary())
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert text.index("contributions and rewards") < text.index("reward models") < text.index("rounds valued")
    epsilon = next(line for line in lines if line.strip().startswith("epsilon"))
    assert "1" in epsilon.split()[1] and "0.0080" in epsilon and "20.00" in epsilon and "0.610" in epsilon
    models = lines[text[: text.index("reward models")].count("\n") :]
    alpha_model = next(line for line in models if line.strip().startswith("alpha"))
    assert "0.9000" in alpha_model and "0.2500" in alpha_model  # the task's accuracy and loss, not the utility
    assert any("7 of 40 rounds valued (1-6, 9)" in line for line in lines)
    assert len(lines) < 60


def test_per_round_on_request_lists_every_valued_round():
    lines = printed(forty_round_summary(), per_round=True)
    assert max(len(line) for line in lines) <= 80
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows if len(row) == 6] == [*range(1, 7), 9]
