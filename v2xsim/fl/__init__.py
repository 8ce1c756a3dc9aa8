"""Federated learning of GBA-Vehicle: the strategy contract (shaped like Flower's), the
aggregation maths as pure functions over per-client state dicts, the built-in strategies
(centralized, fedavg, flash, modality_aware, da, and any Flower strategy via "flower"),
the vehicle clients with DA- / DA+, and the round-by-round runner."""

from v2xsim.fl.base import ClientInfo, ClientUpdate, FitFailure, FitInstruction, Strategy

__all__ = ["ClientInfo", "ClientUpdate", "FitFailure", "FitInstruction", "Strategy"]
