"""The plug-in registry: names, duplicates, unknown names list the valid ones, removal."""

import pytest

from v2xsim.errors import ConfigError
from v2xsim.registry import Registry


def test_register_get_and_unregister():
    registry: Registry[type] = Registry("widget")

    @registry.register("round")
    class Round:
        pass

    assert registry.get("round") is Round
    registry.register("round")(Round)  # the same object again is harmless
    with pytest.raises(ValueError, match="widget 'round' is already registered"):
        registry.register("round")(type("Other", (), {}))
    with pytest.raises(ConfigError, match="unknown widget 'square'; valid: round"):
        registry.get("square")
    registry.unregister("round")
    assert "round" not in registry
    with pytest.raises(KeyError, match="widget 'round' is not registered"):
        registry.unregister("round")
