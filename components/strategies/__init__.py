"""Aggregation strategies, chosen by name in the federation config."""

from components.strategies.base import ClientUpdate, Strategy
from components.strategies.registry import build_strategy, strategy_names

__all__ = ["ClientUpdate", "Strategy", "build_strategy", "strategy_names"]
