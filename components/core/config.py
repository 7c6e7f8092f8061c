"""Federation config: what an MLOps engineer writes (YAML), typed and validated.

Everything a run reads later is checked here, when the file is loaded and before any party is contacted:
the strategy and its options (wrappers' inner strategies recursively, each strategy built once), the valuation
method and its options, the promotion metric. Each mistake is one line naming its field path and the valid
choices, and every mistake in the file is reported in the one ``ConfigError``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from components.core.errors import ConfigError
from components.core.glm.family import FAMILIES, FamilyName
from components.core.glm.model import family_problem, glm_spec
from components.core.model_spec import Layer, ModelSpec, PluginRef, family_problems
from components.core.splits import ValidationSplit
from components.core.strategies.registry import check_strategy
from components.core.tasks import ALL_METRICS, TaskKind, default_promotion_metric, higher_is_better, metrics_of
from components.core.valuation import valuation_problems
from components.core.valuation.exact import ExactOptions

RUN_METRICS = ALL_METRICS  # what a run can measure each round (RoundMetrics): its task picks a subset

Location = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _mistake(message: str) -> PydanticCustomError:
    return PydanticCustomError("config", "{message}", {"message": message})


def _mistakes(title: str, problems: list[tuple[Location, str]]) -> ValidationError:
    """One validation error per problem, each at its own location (pydantic nests them under the field)."""
    return ValidationError.from_exception_data(
        title, [InitErrorDetails(type=_mistake(message), loc=loc, input=None) for loc, message in problems]
    )


def _run_metric_or_default(value: Any) -> Any:
    return None if value is None else _run_metric(value)


def _run_metric(value: Any) -> Any:
    if value not in RUN_METRICS:
        raise _mistake(f"{value!r} is not a metric the run produces; choose one of [{', '.join(RUN_METRICS)}]")
    return value


class TrainingSpec(BaseModel):
    """Local optimisation settings sent with every training request.

    Every field has a default that keeps the original behaviour (mini-batch SGD with momentum, constant rate).

    - ``optimizer``: ``sgd`` (uses ``momentum``), ``adam`` or ``adamw`` (``momentum`` is not read). The
      optimiser's state starts fresh every round: a party keeps nothing between rounds.
    - ``weight_decay``: L2 penalty of the optimiser (decoupled for ``adamw``).
    - ``lr_schedule``: the learning rate as a function of the federated ROUND (constant within a round), see
      ``learning_rate_at``: ``step`` multiplies by ``lr_gamma`` every ``lr_step_rounds`` rounds; ``cosine``
      anneals from ``learning_rate`` at round 1 to ``lr_min`` at round ``lr_total_rounds`` (required: the
      number of rounds the schedule spans, usually the run's ``rounds``) and stays there.
    - ``class_weights``: per-class weights of the cross-entropy (classification only; one per class).
    - ``grad_clip_norm``: clip each step's gradient to this L2 norm (over all trained tensors).
    """

    local_epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd only")
    proximal_mu: float = Field(default=0.0, ge=0)
    seed: int = 0
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    weight_decay: float = Field(default=0.0, ge=0)
    lr_schedule: Literal["constant", "step", "cosine"] = "constant"
    lr_step_rounds: int = Field(default=10, ge=1, description="step: rounds between decays")
    lr_gamma: float = Field(default=0.5, gt=0, le=1, description="step: factor per decay")
    lr_min: float = Field(default=0.0, ge=0, description="cosine: the rate it ends at")
    lr_total_rounds: int | None = Field(default=None, ge=1, description="cosine: the rounds it spans")
    class_weights: list[float] | None = Field(default=None, min_length=1, description="cross-entropy, per class")
    grad_clip_norm: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _schedule(self) -> TrainingSpec:
        if self.lr_schedule == "cosine":
            if self.lr_total_rounds is None:
                raise ValueError("lr_schedule 'cosine' needs lr_total_rounds, the rounds it spans (usually rounds)")
            if self.lr_min > self.learning_rate:
                raise ValueError(f"lr_min={self.lr_min} is above learning_rate={self.learning_rate}")
        weights = self.class_weights
        if weights is not None and (any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0):
            raise ValueError("class_weights must be finite, non-negative and not all zero")
        return self

    def learning_rate_at(self, round_number: int) -> float:
        """The learning rate of federated round ``round_number`` (rounds count from 1; 0 = outside a run)."""
        done = max(round_number - 1, 0)  # rounds already run before this one
        if self.lr_schedule == "step":
            return self.learning_rate * self.lr_gamma ** (done // self.lr_step_rounds)
        if self.lr_schedule == "cosine":
            span = max((self.lr_total_rounds or 1) - 1, 1)
            progress = min(done / span, 1.0)
            return self.lr_min + (self.learning_rate - self.lr_min) * (1 + math.cos(math.pi * progress)) / 2
        return self.learning_rate


class ContractRef(_Strict):
    name: str
    version: int | None = None


class ModelConfig(_Strict):
    """The model under ``model:``; the run adds the contract's n_features, n_classes and task (``spec``).

    Fields mean what they mean in ``components.core.model_spec.ModelSpec``."""

    kind: Literal["mlp", "layers", "plugin", "glm"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [32])
    layers: list[Layer] = Field(default_factory=list)
    plugin: PluginRef | None = None
    input_shape: list[Annotated[int, Field(ge=1)]] | None = None
    standardize: bool = True
    seed: int = 0
    family: FamilyName | None = Field(default=None, description="kind glm: gaussian, binomial or poisson")
    ridge: float = Field(default=0.0, ge=0, description="kind glm: L2 penalty on the coefficients but the intercept")

    @model_validator(mode="after")
    def _family(self) -> ModelConfig:
        if self.kind == "glm":
            if self.family is None:
                raise ValueError(f"kind glm needs a family: one of [{', '.join(FAMILIES)}]")
            return self
        for problem in family_problems(self.kind, self.layers, self.plugin):
            raise ValueError(problem)
        return self

    def spec(self, n_features: int, n_classes: int, task: TaskKind = "multiclass") -> ModelSpec:
        """The ModelSpec of this model for a contract's shape (shape mistakes raise ValueError here).

        A GLM is served as a linear model on the standardised features (``components.core.glm.model``)."""
        if self.kind == "glm":
            problem = family_problem(self.family or "", task)
            if problem is not None:
                raise ValueError(problem)
            return glm_spec(n_features, task, self.family or "gaussian")
        fields = self.model_dump(exclude={"family", "ridge"})
        return ModelSpec(n_features=n_features, n_classes=n_classes, task=task, **fields)


class StrategyConfig(_Strict):
    """A strategy by name with its options; wrappers name theirs in ``options.inner`` / ``options.inner_options``."""

    name: str = "fedavg"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _buildable(self) -> StrategyConfig:
        checked = check_strategy(self.name, self.options)
        if checked.problems:
            raise _mistakes("StrategyConfig", [(p.loc, p.message) for p in checked.problems])
        self.name, self.options = checked.name, checked.options
        return self


class CoordinatorConfig(_Strict):
    bind: str = "tcp://127.0.0.1:5555"
    secret_key_file: Path
    max_inflight_mb: int = Field(
        default=256,
        ge=1,
        description="requests carrying the model (training, evaluation) unanswered at once, in MB: a model's worth "
        "of memory each while in flight, so many parties get it in waves (always one party at least)",
    )


class PartyEntry(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    public_key: str = Field(min_length=40, max_length=40)


class ValuationConfig(_Strict):
    method: str = "loo"
    metric: str = Field(
        default="loss",
        description="coalition utility: held-out loss reduction (log loss or MSE: smooth), or another task metric",
    )
    options: dict[str, Any] = Field(default_factory=dict)
    min_round_gain: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="between-round truncation: a round counts only if its global utility moved by at least "
        "this share of the run's largest move (components/core/valuation/run_totals.py)",
    )

    _metric = field_validator("metric", mode="before")(_run_metric)

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        for _, message in valuation_problems(method):
            raise _mistake(message)
        return method

    @field_validator("options")
    @classmethod
    def _method_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "method" in info.data:  # else the method is already reported
            problems = valuation_problems(info.data["method"], options)
            if problems:  # located at ("options", ...), and pydantic puts them under this field
                raise _mistakes("ValuationConfig", [(loc[1:], message) for loc, message in problems])
        return options


SECURE_STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad")


class RateLimitConfig(_Strict):
    """What one party may send unasked (hello, heartbeat, register, bye); replies to requests are never limited."""

    messages_per_s: float = Field(default=20.0, gt=0)
    burst: int = Field(default=100, ge=1)
    disconnect_after: int = Field(default=2000, ge=1, description="dropped messages before a flooder is cut off")


class SecureAggregationConfig(_Strict):
    """Pairwise-masked updates: the coordinator only learns the sum of each round's updates."""

    enabled: bool = False
    threshold_fraction: float = Field(default=0.66, gt=0, le=1, description="share of parties needed to unmask")


class RewardConfig(_Strict):
    """How a run's reward pool is split: a floor for every clean participant, the rest by contribution."""

    pool: float = Field(default=100.0, ge=0)
    participation_floor: float = Field(default=0.1, ge=0, le=1)


class PromotionConfig(_Strict):
    model_name: str
    metric: str | None = Field(default=None, description="default: the task's (accuracy; r2 for regression)")
    higher_is_better: bool | None = Field(default=None, description="default: from the metric (loss, rmse, mae: lower)")
    min_improvement: float = 0.0
    alias: str = "champion"
    challenger_alias: str = Field(default="challenger", description="the alias every registered candidate gets")
    threshold: float | None = Field(
        default=None, description="the candidate's metric must reach this (at least it; at most, lower is better)"
    )
    max_fairness_gap: float | None = Field(
        default=None,
        ge=0,
        description="the most the worst party's metric may fall below the parties' weighted mean (same units)",
    )
    approval: Literal["none", "required"] = Field(
        default="none", description="required: a person approves (Prefect UI or `consortia approve RUN_ID`)"
    )
    approval_timeout_s: float = Field(
        default=3600.0, gt=0, description="how long a held promotion waits for its answer before the champion is kept"
    )

    _metric = field_validator("metric", mode="before")(_run_metric_or_default)

    def resolved(self, task: TaskKind) -> PromotionConfig:
        """This config with the task's default metric and the metric's direction filled in."""
        metric = self.metric or default_promotion_metric(task)
        if metric not in metrics_of(task):
            raise ConfigError(
                f"promotion.metric: {metric!r} is not a {task} metric; choose one of [{', '.join(metrics_of(task))}]"
            )
        better = higher_is_better(metric) if self.higher_is_better is None else self.higher_is_better
        return self.model_copy(update={"metric": metric, "higher_is_better": better})


class EvaluationConfig(_Strict):
    """Federated evaluation: each party measures the candidate (the final model) on its own rows.

    ``validation``: the split of its rows each party holds out of training and evaluates on, when the party's
    own ``party.yaml`` names none (a party's own split wins); unset: parties train on all their rows (and
    evaluate on them), so runs train exactly as without this section."""

    parties: bool = Field(default=True, description="ask every party for its metrics of the final model")
    validation: ValidationSplit | None = None


class FederationConfig(_Strict):
    """One federation: contract, model, strategy, rounds and the parties admitted by public key."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    contract: ContractRef
    model: ModelConfig = Field(default_factory=ModelConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    rounds: int = Field(default=10, ge=1)
    min_parties: int = Field(default=1, ge=1)
    fraction: float = Field(default=1.0, gt=0, le=1, description="share of online parties sampled per round")
    round_timeout_s: float = Field(default=120.0, gt=0)
    heartbeat_timeout_s: float = Field(default=15.0, gt=0, description="silence after which a party is offline")
    join_timeout_s: float = Field(default=120.0, gt=0)
    approval_timeout_s: float = Field(
        default=600.0, gt=0, description="how long a run waits for parties whose owner holds the plan for approval"
    )
    holdout: Path | None = None
    coordinator: CoordinatorConfig
    parties: list[PartyEntry] = Field(min_length=1)
    valuation: ValuationConfig = Field(default_factory=ValuationConfig)
    secure_aggregation: SecureAggregationConfig = Field(default_factory=SecureAggregationConfig)
    rewards: RewardConfig = Field(default_factory=RewardConfig)
    promotion: PromotionConfig
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    privacy_delta: float = Field(default=1e-5, gt=0, lt=1, description="delta for epsilon reports without budgets")
    max_message_mb: int = Field(default=256, ge=1)
    party_rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    party_updates: Literal["keep", "until_settled", "none"] = Field(
        default="keep",
        description="until_settled: delete each party's stored updates once the run completed (valuation and "
        "rewards are done, no resume needs them); keep: keep them in checkpoints/RUN_ID/updates; none: never "
        "keep them (contributions are not valued), so FedAvg and FedProx fold each update into the aggregate "
        "as it arrives and the coordinator's memory grows with the model, not with parties x model",
    )
    max_update_norm: float | None = Field(
        default=None, gt=0, description="reject updates farther than this (L2) from the global model"
    )
    max_party_weight: float | None = Field(
        default=None, gt=0, le=1, description="the largest share of the aggregate one party's update may weigh"
    )

    @model_validator(mode="after")
    def _consistent(self) -> FederationConfig:
        problems: list[tuple[Location, str]] = []
        names = [p.name for p in self.parties]
        if len(set(names)) != len(names):
            problems.append((("parties",), "party names must be unique"))
        keys = [p.public_key for p in self.parties]
        if len(set(keys)) != len(keys):
            problems.append((("parties",), "party public keys must be unique"))
        if self.secure_aggregation.enabled and self.strategy.name not in SECURE_STRATEGIES:
            problems.append(
                (
                    ("strategy", "name"),
                    f"strategy {self.strategy.name!r} needs every party's update; with secure aggregation the "
                    f"coordinator sees only their sum: use one of [{', '.join(SECURE_STRATEGIES)}]",
                )
            )
        if self.model.kind == "glm" and self.strategy.name != "fedavg":
            problems.append(
                (
                    ("strategy", "name"),
                    f"a GLM is fitted by Newton steps on every party's sums; strategy {self.strategy.name!r} does not "
                    "apply (leave strategy out)",
                )
            )
        if self.secure_aggregation.enabled and self.max_party_weight is not None:
            problems.append(
                (
                    ("max_party_weight",),
                    "with secure aggregation each party weighs its own masked update: the coordinator cannot cap it",
                )
            )
        if self.min_parties > len(self.parties):
            problems.append(
                (("min_parties",), f"min_parties={self.min_parties} exceeds the {len(self.parties)} parties listed")
            )
        if self.valuation.method == "exact" and not self.secure_aggregation.enabled:
            limit = ExactOptions.model_validate(self.valuation.options).max_parties
            largest = self.largest_round()
            if largest > limit:
                problems.append(
                    (
                        ("valuation", "options", "max_parties"),
                        f"exact Shapley refuses rounds of more than max_parties={limit} parties, and a round here "
                        f"can have {largest}: it would fail after training; raise max_parties or choose 'gtg'",
                    )
                )
        if problems:
            raise _mistakes("FederationConfig", problems)
        return self

    def largest_round(self) -> int:
        """The most parties one round can train (and valuation then values): everyone listed at ``fraction`` 1."""
        n = len(self.parties)
        return n if self.fraction >= 1 else min(n, max(self.min_parties, math.ceil(self.fraction * n)))

    def party_by_key(self) -> dict[str, str]:
        return {p.public_key: p.name for p in self.parties}


def load_yaml_model(path: Path, model: type[BaseModel]) -> Any:
    """Read a YAML file into ``model``; relative paths inside stay relative to the file's folder."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    try:
        return model.model_validate(raw, context={"base": Path(path).resolve().parent})
    except ValidationError as error:
        raise ConfigError(describe_errors(path, error)) from None


def describe_errors(path: Path | str, error: ValidationError) -> str:
    """``error`` as one line per mistake, ``field.path: message``, under the file's name."""
    lines = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors()]
    if len(lines) == 1:
        return f"{path}: {lines[0]}"
    return f"{path}: {len(lines)} mistakes\n" + "\n".join(f"  {line}" for line in lines)


def resolve(path: Path | None, base: Path) -> Path | None:
    """``path`` made absolute against ``base`` (the config file's folder)."""
    if path is None:
        return None
    return path if path.is_absolute() else (base / path).resolve()


def load_federation_config(path: Path) -> FederationConfig:
    config: FederationConfig = load_yaml_model(path, FederationConfig)
    base = Path(path).resolve().parent
    config.coordinator.secret_key_file = resolve(config.coordinator.secret_key_file, base)
    config.holdout = resolve(config.holdout, base)
    return config


def dump_yaml(model: BaseModel, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False))
    return path
