"""Aggregation strategies, chosen by name in the federation config."""

from components.core.strategies.base import ClientUpdate, PrivacyAccount, Strategy
from components.core.strategies.registry import build_strategy, strategy_names

__all__ = ["ClientUpdate", "PrivacyAccount", "Strategy", "build_strategy", "strategy_names"]
