"""One small name -> class registry, one instance per plug-in kind.

Example::

    from v2xsim.registry import MOBILITY

    @MOBILITY.register("stop_and_go")
    class StopAndGo: ...

    model_cls = MOBILITY.get("stop_and_go")
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

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

    def unregister(self, name: str) -> None:
        """Remove the plug-in ``name`` (e.g. one a test registered); unknown names are an error."""
        if name not in self._entries:
            raise KeyError(f"{self.kind} {name!r} is not registered")
        del self._entries[name]

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

    def options(self, name: str, *, reserved: tuple[str, ...] = ()) -> list[str] | None:
        """Option names the entry ``name`` accepts (its keyword parameters minus ``reserved``,
        the ones the engine passes); None when it takes arbitrary keywords."""
        factory = self.get(name)
        try:
            parameters = inspect.signature(factory).parameters.values()  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return None
        keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return sorted(p.name for p in parameters if p.kind in keyword and p.name not in reserved)

    def create(self, name: str, options: Mapping[str, Any] | None = None, **engine: Any) -> Any:
        """Instantiate the entry ``name`` with the user's ``options`` and the ``engine``'s
        own keyword arguments. An unknown option, or an option the constructor rejects
        (ValueError / TypeError), is a :class:`ConfigError` naming the plug-in."""
        factory = self.get(name)
        options = dict(options or {})
        valid = self.options(name, reserved=tuple(engine))
        if valid is not None:
            for key in options:
                if key not in valid:
                    listed = ", ".join(valid) or "(none)"
                    raise ConfigError(f"{self.kind} {name!r}: unknown option {key!r}; valid: {listed}")
        try:
            return factory(**options, **engine)  # type: ignore[operator]
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{self.kind} {name!r}: {exc}") from None

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


MOBILITY: Registry[Any] = Registry("mobility model", builtin_modules=(
    "v2xsim.mobility.builtin", "v2xsim.mobility.sumo", "v2xsim.mobility.trace"))
CHANNEL: Registry[Any] = Registry("channel backend", builtin_modules=("v2xsim.channel.geometric", "v2xsim.channel.sionna_rt"))
SCHEME: Registry[Any] = Registry("scheme", builtin_modules=("v2xsim.schemes.baselines", "v2xsim.schemes.gba"))
FL_STRATEGY: Registry[Any] = Registry("FL strategy", builtin_modules=("v2xsim.fl.strategies",))
EXECUTOR: Registry[Any] = Registry("executor", builtin_modules=("v2xsim.executors",))
