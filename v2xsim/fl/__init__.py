"""Federated learning: the strategy contract (shaped like Flower's), the aggregation maths
as pure functions over per-client state dicts, and the built-in strategies."""

from v2xsim.fl.base import ClientUpdate, FitFailure, Strategy

__all__ = ["ClientUpdate", "FitFailure", "Strategy"]
