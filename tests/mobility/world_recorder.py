"""Records every state the engine's world passes through (for comparisons with SUMO's FCD)."""

from typing import Any, Callable

from v2xsim.sim.world import World


def record_world(monkeypatch, state: Callable[[World], Any]) -> list[Any]:
    """``state(world)`` after the world is built and after every ``advance``, in order."""
    states = []
    original_init, original_advance = World.__init__, World.advance

    def init(self, **kwargs):
        original_init(self, **kwargs)
        states.append(state(self))

    def advance(self, dt):
        left = original_advance(self, dt)
        states.append(state(self))
        return left

    monkeypatch.setattr(World, "__init__", init)
    monkeypatch.setattr(World, "advance", advance)
    return states
