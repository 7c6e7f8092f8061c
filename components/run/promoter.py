"""The promoter: register the run's model, and move the alias only when it beats the champion (the gate)."""

from __future__ import annotations

from collections.abc import Mapping

from components.core.config import PromotionConfig
from components.core.gates import promotion_gate
from components.core.ports import RegistryPort
from components.core.tasks import TaskKind
from components.run.summary import Promotion


class Promoter:
    """Registers every run's model with its lineage (run id, data manifests); the gate decides the alias."""

    def __init__(self, config: PromotionConfig, registry: RegistryPort, task: TaskKind) -> None:
        self.config = config.resolved(task)
        self.registry = registry

    def promote(
        self,
        model_uri: str,
        metrics: Mapping[str, float],
        run_id: str,
        manifests: Mapping[str, str],
        *,
        tags: Mapping[str, str] | None = None,
        description: str = "",
    ) -> tuple[Promotion, int]:
        """The promotion decision and the version registered for this run's model (registered on every run, with
        further lineage ``tags`` and its model card as ``description``; the alias moves to it only when the gate
        says so)."""
        cfg = self.config
        candidate = metrics[cfg.metric]
        champion = self.registry.version_by_alias(cfg.model_name, cfg.alias)
        champion_value = float(champion.tags[f"metric.{cfg.metric}"]) if champion else None
        decision = promotion_gate(cfg.metric, candidate, champion_value, cfg.higher_is_better, cfg.min_improvement)
        version = self.registry.register(
            model_uri,
            cfg.model_name,
            tags={
                f"metric.{cfg.metric}": repr(float(candidate)),  # exact: the next run compares against it
                "consortia.run_id": run_id,
                **{f"manifest.{p}": h for p, h in manifests.items()},
                **(tags or {}),
            },
            description=description,
        )
        if decision.promote:
            self.registry.set_alias(cfg.model_name, cfg.alias, version)
        promotion = Promotion(
            decision="promoted" if decision.promote else "kept",
            reason=decision.reason,
            model_name=cfg.model_name,
            version=version,
            champion_version=version if decision.promote else (champion.version if champion else None),
            alias=cfg.alias,
            metric=cfg.metric,
            candidate_value=candidate,
            champion_value=champion_value,
        )
        return promotion, version
