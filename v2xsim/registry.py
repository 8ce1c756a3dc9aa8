"""One small name -> class registry, one instance per plug-in kind.

Example::

    from v2xsim.registry import MOBILITY

    @MOBILITY.register("stop_and_go")
    class StopAndGo: ...

    model_cls = MOBILITY.get("stop_and_go")
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from v2xsim.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps plug-in names to classes (or factories) of one kind.

    ``builtin_modules`` are imported on first lookup so the built-in plug-ins
    register themselves without importing heavy code at start-up.
    """

    def __init__(self, kind: str, *, builtin_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._builtin_modules = builtin_modules
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a second use of a name is an error."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtin_modules:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name lists the valid ones."""
        self._load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def create(self, name: str, **kwargs: Any) -> Any:
        """Instantiate the entry ``name`` with keyword arguments."""
        factory = self.get(name)
        try:
            return factory(**kwargs)  # type: ignore[operator]
        except TypeError as exc:
            raise ConfigError(f"{self.kind} {name!r}: {exc}") from None

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


MOBILITY: Registry[Any] = Registry("mobility model", builtin_modules=("v2xsim.mobility.builtin",))
CHANNEL: Registry[Any] = Registry("channel backend", builtin_modules=("v2xsim.channel.geometric", "v2xsim.channel.sionna_rt"))
SCHEME: Registry[Any] = Registry("scheme", builtin_modules=("v2xsim.agents.baselines", "v2xsim.agents.gba"))
FL_STRATEGY: Registry[Any] = Registry("FL strategy", builtin_modules=())
