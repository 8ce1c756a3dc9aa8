"""FL on the road: a corridor of RSUs, a fleet of cars, every RSU's beam-alignment loop and
federated rounds of GBA-Vehicle on one simulated clock (docs/fl-corridor.md)."""
