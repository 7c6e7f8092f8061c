"""Shapley-family valuation on games with known values, the Shapley axioms, and one round by hand."""

import numpy as np
import pytest

from components.core.errors import ConfigError
from components.core.strategies import ClientUpdate
from components.core.valuation import methods_under_secure_aggregation, valuation_methods, value_round
from components.core.valuation.exact import ExactOptions, exact_shapley
from components.core.valuation.game import CoalitionUtility
from components.core.valuation.gtg import GTGOptions, gtg_shapley
from components.core.valuation.run_totals import RoundGame, ranks_within_error, run_totals, value_run, valued_rounds
from components.core.valuation.tmc import TMCOptions, tmc_shapley


def game(players, v, workers=1):
    return CoalitionUtility(players, lambda coalition: v(coalition), workers=workers)


def glove(left, right):
    """Each matched left-right pair of gloves is worth 1."""
    return lambda s: min(len(s & set(left)), len(s & set(right)))


def concave_game(weights):
    """v(S) = sqrt(sum of weights in S): not additive, every player matters."""
    return lambda s: float(np.sqrt(sum(weights[p] for p in s)))


# ---- exact Shapley on games with known values ----


def test_additive_game_values_are_the_weights():
    weights = {"a": 1.0, "b": 2.0, "c": 5.0}
    values = exact_shapley(game(weights, lambda s: 10.0 + sum(weights[p] for p in s)))
    assert values == pytest.approx(weights)


def test_symmetric_game_splits_evenly():
    values = exact_shapley(game("abcd", lambda s: len(s) ** 2))  # v(N) - v(empty) = 16
    assert values == pytest.approx(dict.fromkeys("abcd", 4.0))


def test_glove_game():
    # a (left) is needed by both right gloves: a gets 2/3, b and c get 1/6 each
    values = exact_shapley(game("abc", glove("a", "bc")))
    assert values == pytest.approx({"a": 2 / 3, "b": 1 / 6, "c": 1 / 6})


def test_axioms_efficiency_symmetry_null_player():
    weights = {"a": 1.0, "b": 3.0, "c": 3.0, "d": 0.0}  # b and c symmetric, d a null player
    values = exact_shapley(game(weights, lambda s: 2.0 + float(np.sqrt(sum(weights[p] for p in s)))))
    assert sum(values.values()) == pytest.approx(np.sqrt(7.0))  # v(N) - v(empty)
    assert values["b"] == pytest.approx(values["c"])
    assert values["d"] == pytest.approx(0.0)
    assert values["a"] > 0


def test_exact_evaluates_every_coalition_once_and_refuses_large_games():
    utility = game("abcde", len)
    exact_shapley(utility)
    exact_shapley(utility)  # second pass is all cache hits
    assert utility.evaluations == 32
    with pytest.raises(ConfigError, match="max_parties=4"):
        exact_shapley(game("abcde", len), ExactOptions(max_parties=4))


def test_batch_on_threads_gives_same_values():
    weights = {p: float(i + 1) for i, p in enumerate("abcdef")}
    serial = exact_shapley(game(weights, concave_game(weights)))
    threaded = exact_shapley(game(weights, concave_game(weights), workers=2))
    assert threaded == pytest.approx(serial)


# ---- Monte Carlo estimators converge to exact ----

TOLERANCE = 0.03  # absolute, on games whose v(N) - v(empty) is about 1 to 3, after n * 400 permutations


@pytest.mark.parametrize(
    ("players", "v"),
    [
        ("abcde", glove("ab", "cde")),
        ({"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.5, "e": 0.0, "f": 4.0}, None),
    ],
    ids=["glove-5", "concave-6"],
)
@pytest.mark.parametrize(
    "estimate",
    [
        lambda u: gtg_shapley(u, GTGOptions(min_cycles=400, truncation=0)).values,
        lambda u: gtg_shapley(u, GTGOptions(min_cycles=400, truncation=0, guide_last=False)).values,
        lambda u: tmc_shapley(u, TMCOptions(min_batches=400, truncation=0)).values,
    ],
    ids=["gtg", "gtg-first-only", "tmc"],
)
def test_monte_carlo_close_to_exact(players, v, estimate):
    v = v or concave_game(players)
    exact = exact_shapley(game(players, v))
    estimated = estimate(game(players, v))
    assert max(abs(estimated[p] - exact[p]) for p in exact) < TOLERANCE
    assert sum(estimated.values()) == pytest.approx(sum(exact.values()))  # every permutation is efficient


def test_gtg_skips_a_round_that_gained_nothing():
    utility = game("abc", lambda s: 0.5 if len(s) != 1 else 0.9)  # v(N) == v(empty)
    assert gtg_shapley(utility).values == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert utility.evaluations == 2


def test_truncation_saves_evaluations_on_a_saturating_game():
    def v(s):
        return min(len(s), 1)  # the first party already reaches v(N)

    full, truncated = game("abcdef", v), game("abcdef", v)
    gtg_shapley(full, GTGOptions(truncation=0.0, seed=1))
    values = gtg_shapley(truncated, GTGOptions(truncation=0.05, seed=1)).values
    assert truncated.evaluations < full.evaluations
    assert values == pytest.approx(dict.fromkeys("abcdef", 1 / 6))


# ---- one federated round, by hand ----
#   start w=0; a: w=1 (1 row); b: w=3 (1 row); evaluate = w
#   v(empty)=0, v(a)=1, v(b)=3, v(ab)=2
#   Shapley: a = ((1-0) + (2-3))/2 = 0, b = ((3-0) + (2-1))/2 = 2;  LOO: a = 2-3 = -1, b = 2-1 = 1


def round_inputs():
    updates = [
        ClientUpdate("a", {"w": np.array([1.0], dtype=np.float32)}, num_examples=1),
        ClientUpdate("b", {"w": np.array([3.0], dtype=np.float32)}, num_examples=1),
    ]
    return updates, {"w": np.array([0.0], dtype=np.float32)}, lambda params: float(params["w"][0])


@pytest.mark.parametrize(
    ("method", "expected", "evaluations"),
    [
        ("exact", {"a": 0.0, "b": 2.0}, 4),
        ("gtg", {"a": 0.0, "b": 2.0}, 4),
        ("loo", {"a": -1.0, "b": 1.0}, 3),
        ("cgsv", {"a": 1.0, "b": 1.0}, 0),  # both deltas point the same way as the aggregate's
    ],
)
def test_value_round_by_hand(method, expected, evaluations):
    updates, start, evaluate = round_inputs()
    result = value_round(method, updates, start, evaluate, {})
    assert result.method == method
    assert result.values == pytest.approx(expected)
    assert result.evaluations == evaluations


def test_known_start_utility_saves_one_evaluation():
    updates, start, evaluate = round_inputs()
    result = value_round("exact", updates, start, evaluate, start_utility=0.0)
    assert result.evaluations == 3 and result.values == pytest.approx({"a": 0.0, "b": 2.0})


def test_cgsv_scores_opposite_update_negative():
    updates, start, evaluate = round_inputs()
    updates.append(ClientUpdate("c", {"w": np.array([-4.0], dtype=np.float32)}, num_examples=2))
    result = value_round("cgsv", updates, start, evaluate)  # aggregate w = (1 + 3 - 8) / 4 = -1
    assert result.values == pytest.approx({"a": -1.0, "b": -1.0, "c": 1.0})


def test_identical_updates_get_equal_values_from_every_method():
    rng = np.random.default_rng(0)
    target = rng.normal(size=4)
    start = {"w": np.zeros(4, dtype=np.float32)}
    updates = [ClientUpdate(f"p{i}", {"w": rng.normal(size=4).astype(np.float32)}, 10 * (i + 1)) for i in range(4)]
    updates.append(ClientUpdate("copy", dict(updates[0].params), updates[0].num_examples))

    def evaluate(params):
        return -float(np.linalg.norm(params["w"] - target))

    for method in valuation_methods():
        values = value_round(method, updates, start, evaluate, {"tolerance": 0.2} if method in ("gtg", "tmc") else {})
        assert values.values["copy"] == pytest.approx(values.values["p0"]), method


def test_config_mistakes_are_config_errors():
    updates, start, evaluate = round_inputs()
    with pytest.raises(ConfigError, match="unknown valuation method 'banzhaf'"):
        value_round("banzhaf", updates, start, evaluate)
    with pytest.raises(ConfigError, match="tolerance"):
        value_round("gtg", updates, start, evaluate, {"tolerance": -1})
    with pytest.raises(ConfigError, match="max_permutations"):
        value_round("cgsv", updates, start, evaluate, {"max_permutations": 5})


def test_methods_listed_and_none_under_secure_aggregation():
    assert valuation_methods() == ["cgsv", "exact", "gtg", "loo", "tmc"]
    assert methods_under_secure_aggregation() == []


def test_efficiency_holds_for_exact_on_a_round():
    rng = np.random.default_rng(1)
    start = {"w": np.zeros(3, dtype=np.float32)}
    updates = [
        ClientUpdate(p, {"w": rng.normal(size=3).astype(np.float32)}, n)
        for p, n in zip("abcd", (5, 1, 3, 2), strict=True)
    ]
    target = np.array([1.0, -1.0, 0.5])

    def evaluate(params):
        return -float(np.sum((params["w"] - target) ** 2))

    result = value_round("exact", updates, start, evaluate)
    everyone = evaluate({"w": np.average([u.params["w"] for u in updates], axis=0, weights=[5, 1, 3, 2])})
    assert sum(result.values.values()) == pytest.approx(everyone - evaluate(start), rel=1e-5)
    assert result.evaluations == 2**4 and result.seconds >= 0


def test_guided_first_and_last_is_unbiased_on_three_players():
    # with 3 players a cycle is fixed by who is last: one of two derangements, each giving a biased
    # split between b and c; drawing them at random averages out to the exact values
    v = glove("a", "bc")
    utility = game("abc", v)
    estimate = gtg_shapley(utility, GTGOptions(truncation=0, min_cycles=1000, max_permutations=3000)).values
    assert estimate == pytest.approx({"a": 2 / 3, "b": 1 / 6, "c": 1 / 6}, abs=0.02)
    assert utility.evaluations == 2**3  # the cache caps the cost at every coalition once


# ---- a run: which rounds count, totals and their errors, by hand ----


def test_rounds_that_barely_moved_are_not_valued():
    assert valued_rounds({1: 0.5, 2: -0.2, 3: 0.04, 4: 0.0}, 0.1) == [1, 2]
    assert valued_rounds({1: 0.0, 2: 0.0}, 0.1) == []
    assert valued_rounds({1: 0.5, 3: 0.04}, 0.0) == [1, 3]


def test_run_totals_and_errors_by_hand():
    # round totals w = 1 and 3 (W = 4); a: 0.5 + 1.5 = 2 (half of every round: no spread), b: 0.5 + 1.5 = 2
    # c: 0 then 0 -> 0. Now make b uneven: b: 0.5 then 1.0, c: 0 then 0.5 (w still 1 and 3 with a's 0.5, 1.5)
    per_round = {1: {"a": 0.5, "b": 0.5, "c": 0.0}, 2: {"a": 1.5, "b": 1.0, "c": 0.5}}
    totals, errors = run_totals(per_round, {2: {"c": 0.3}}, ["a", "b", "c", "idle"])
    assert totals == pytest.approx({"a": 2.0, "b": 1.5, "c": 0.5, "idle": 0.0})
    # b expects w_r * 1.5 / 4 = 0.375, 1.125: residuals 0.125, -0.125 -> 2/1 * 2 * 0.125^2 = 0.0625
    # c expects 0.125, 0.375: residuals -0.125, 0.125 -> 0.0625, plus the permutation error 0.3^2 = 0.09
    assert errors == pytest.approx({"a": 0.0, "b": 0.25, "c": float(np.sqrt(0.0625 + 0.09)), "idle": 0.0})


def test_parties_equal_within_error_share_a_rank():
    totals = {"a": 1.0, "b": 0.9, "c": 0.2, "d": 0.19}
    errors = {"a": 0.05, "b": 0.05, "c": 0.0, "d": 0.0}
    assert ranks_within_error(totals, errors) == {"a": 1, "b": 1, "c": 3, "d": 4}


def test_gtg_reports_a_permutation_error_and_exact_none():
    updates, start, evaluate = round_inputs()
    updates.append(ClientUpdate("c", {"w": np.array([2.0], dtype=np.float32)}, num_examples=1))
    gtg = value_round("gtg", updates, start, evaluate, {"truncation": 0})
    exact = value_round("exact", updates, start, evaluate)
    assert any(e > 0 for e in gtg.errors.values()) and set(exact.errors.values()) == {0.0}


def test_value_run_skips_flat_rounds_and_draws_fresh_permutations_each_round():
    rng = np.random.default_rng(3)
    target = rng.normal(size=6)
    start = {"w": np.zeros(6, dtype=np.float32)}
    updates = [ClientUpdate(f"p{i}", {"w": rng.normal(size=6).astype(np.float32)}, 1 + i) for i in range(6)]

    def evaluate(params):
        return -float(np.linalg.norm(params["w"] - target))

    moved = [RoundGame(r, updates, start) for r in (1, 2)]
    flat = RoundGame(3, [ClientUpdate(u.party, dict(start), u.num_examples) for u in updates], start)
    options = {"truncation": 0, "min_cycles": 2, "max_permutations": 12}
    run = value_run("gtg", [*moved, flat], evaluate, options, [u.party for u in updates], 0.1)
    assert run.valued == [1, 2] and run.skipped == [3]
    assert run.per_round[1] != run.per_round[2]  # same game, other permutations
    assert run.totals == pytest.approx({p: run.per_round[1][p] + run.per_round[2][p] for p in run.totals})
