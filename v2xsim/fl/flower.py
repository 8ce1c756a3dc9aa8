"""Any Flower (``flwr``) server strategy as a v2xsim FL strategy.

:class:`FlowerStrategy` (``"flower"`` in :data:`v2xsim.registry.FL_STRATEGY`) wraps one
class of ``flwr.server.strategy`` (FedAvg, FedProx, FedAdam, FedYogi, FedAdagrad,
FedAvgM, Krum, FaultTolerantFedAvg, ...) and translates between the two contracts:

* clients: each v2xsim client id becomes a stand-in ``ClientProxy`` with ``cid =
  str(id)``; the simulator, not Flower, runs the clients, so the proxy's methods raise.
* parameters: a state dict becomes a list of ``float64`` arrays in the key order of
  the current global state (Flower's ``NDArrays``), and back: each entry gets its
  original dtype, shape and container (torch tensor or numpy array); integer and boolean
  entries (e.g. BatchNorm's ``num_batches_tracked``) are rounded to the nearest integer.
  Handing Flower float64 arrays also avoids its in-place FedAvg multiplying integer
  arrays by a weight cast to an integer (which zeroes them).
* results: a :class:`ClientUpdate` becomes a ``FitRes`` (status OK, its full state,
  ``num_examples = num_samples``, its metrics). Flower strategies need full models: an
  update missing entries of the global state is a ValueError naming the client.
* failures: a :class:`FitFailure` becomes a :class:`ClientFitFailure` exception carrying
  the client and the reason, as Flower's server reports a client that never answered;
  every Flower strategy counts failures by ``len`` or truthiness only.
* the answer: Flower's ``None`` (e.g. FaultTolerantFedAvg below its completion rate, or
  ``accept_failures = False`` with failures) rejects the round (``None``); Flower's
  metrics are kept in :attr:`FlowerStrategy.last_metrics`.

The Flower object is built at the first :meth:`~FlowerStrategy.aggregate_fit` with
``initial_parameters`` = the global state of that moment (server-side optimisers such
as FedAdam need it) and then kept, so server-side optimiser state persists across
rounds. Before each aggregation, the wrapped strategy's own copy of the global model
(``current_weights`` of the FedOpt family, ``initial_parameters`` of FedAvgM) is set to
the ``current`` state it is given, so it steps from the model the clients received.

``flwr`` is an optional dependency (``pip install 'v2xsim[fl]'``), imported only when a
:class:`FlowerStrategy` is created.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from v2xsim.errors import ConfigError
from v2xsim.fl.base import ALL, ClientInfo, ClientUpdate, FitFailure, FitInstruction, State, Strategy
from v2xsim.registry import FL_STRATEGY

#: keyword the adapter supplies itself (the global state at the first aggregation)
INITIAL_PARAMETERS = "initial_parameters"
#: version of the layout :meth:`FlowerStrategy.state_dict` returns
STATE_FORMAT = 1

#: what a list attribute of a Flower strategy holds to count as arrays (numpy arithmetic
#: on 0-d arrays, e.g. FedAdam's moments of ``num_batches_tracked``, gives numpy scalars)
_NUMPY_VALUE = (np.ndarray, np.generic)

_INSTALL_HINT = "the 'flower' FL strategy needs Flower (flwr): pip install 'v2xsim[fl]'"


class ClientFitFailure(RuntimeError):
    """A client that delivered no result in a round, as handed to a Flower strategy's
    ``failures`` list.

    Attributes:
        client: client (vehicle) id.
        reason: why it failed (e.g. "left coverage").
    """

    def __init__(self, client: int, reason: str) -> None:
        super().__init__(f"client {client}: {reason}")
        self.client = client
        self.reason = reason


def _flower_modules() -> tuple[Any, Any]:
    """``(flwr.common, flwr.server.strategy)``; a missing Flower is a ConfigError."""
    try:
        import flwr.common as flower_common
        import flwr.server.strategy as flower_strategies
    except ImportError:
        raise ConfigError(_INSTALL_HINT) from None
    return flower_common, flower_strategies


def flower_strategy_names() -> list[str]:
    """The concrete strategy classes of ``flwr.server.strategy`` (sorted)."""
    _, flower_strategies = _flower_modules()
    names = []
    for name in getattr(flower_strategies, "__all__", dir(flower_strategies)):
        candidate = getattr(flower_strategies, name, None)
        if (inspect.isclass(candidate) and issubclass(candidate, flower_strategies.Strategy)
                and candidate is not flower_strategies.Strategy and not inspect.isabstract(candidate)):
            names.append(name)
    return sorted(names)


@functools.lru_cache(maxsize=1)
def _proxy_class() -> type:
    """A ``ClientProxy`` subclass standing for a simulated client (built once)."""
    from flwr.server.client_proxy import ClientProxy

    class SimulatedClientProxy(ClientProxy):
        """Identifies a v2xsim client to a Flower strategy; the simulator runs the client."""

        def __init__(self, client: int) -> None:
            super().__init__(str(client))
            self.node_id = int(client)

        def _not_here(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("v2xsim runs the clients itself; this proxy only names one")

        get_properties = get_parameters = fit = evaluate = reconnect = _not_here

    return SimulatedClientProxy


def _to_float_array(value: Any) -> np.ndarray:
    """One state entry as a float64 numpy array (a copy)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(device="cpu", dtype=torch.float64, copy=True).numpy()
    return np.array(value, dtype=np.float64)


def _like(array: np.ndarray, original: Any, key: str) -> Any:
    """``array`` with the dtype, shape and container of ``original`` (integers rounded)."""
    shape = tuple(original.shape) if hasattr(original, "shape") else ()
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"Flower returned {array.size} values for entry {key!r} of shape {shape}")
    array = np.asarray(array).reshape(shape)
    if isinstance(original, torch.Tensor):
        if not (original.is_floating_point() or original.is_complex()):
            array = np.rint(array)
        return torch.from_numpy(np.array(array, order="C")).to(device=original.device, dtype=original.dtype)
    dtype = np.asarray(original).dtype
    if not np.issubdtype(dtype, np.inexact):
        array = np.rint(array)
    return array.astype(dtype)


@FL_STRATEGY.register("flower")
class FlowerStrategy(Strategy):
    """A Flower server strategy behind the v2xsim strategy contract (see the module
    docstring for the mapping).

    Rounds follow Flower's sampling: ``num_fit_clients(n)`` of the wrapped strategy gives
    the sample size and the minimum number of available clients (``fraction_fit``,
    ``min_fit_clients``, ``min_available_clients``); with fewer clients than either, no
    client trains that round (Flower's client manager samples nobody). Note Flower's
    defaults ``min_fit_clients = min_available_clients = 2``.

    Args:
        strategy: class name in ``flwr.server.strategy`` (e.g. "FedAdam").
        options: keyword arguments of that class (e.g. ``{"eta": 0.01}``), except
            ``initial_parameters``, which the adapter sets.
    """

    name = "flower"

    def __init__(self, *, strategy: str = "FedAvg", options: Mapping[str, Any] | None = None) -> None:
        flower_common, flower_strategies = _flower_modules()
        valid = flower_strategy_names()
        if strategy not in valid:
            raise ConfigError(f"FL strategy 'flower': option 'strategy': unknown Flower strategy {strategy!r}; "
                              f"valid: {', '.join(valid)}")
        self.strategy_name = strategy
        self.strategy_class: type = getattr(flower_strategies, strategy)
        self.options: dict[str, Any] = dict(options or {})
        self._check_options()
        self.last_metrics: dict[str, Any] = {}
        self._flower_common = flower_common
        #: the strategy used before the first aggregation (configure_fit, evaluate), built
        #: with empty initial parameters; it also checks the option values now
        self._probe = self._build([])
        #: the strategy that aggregates, built at the first aggregation and then kept
        self._flower: Any = None

    # -- construction ---------------------------------------------------------------

    def _check_options(self) -> None:
        """Option names against the class's signature: unknown, reserved and missing
        required ones are ConfigErrors naming the option."""
        where = f"FL strategy 'flower' ({self.strategy_name})"
        parameters = inspect.signature(self.strategy_class).parameters
        if INITIAL_PARAMETERS in self.options:
            raise ConfigError(f"{where}: option {INITIAL_PARAMETERS!r} is set by the adapter "
                              "(the global model at the first aggregation); leave it out")
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        named = [n for n, p in parameters.items()
                 if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        if not takes_any:
            for key in self.options:
                if key not in named:
                    listed = ", ".join(sorted(n for n in named if n != INITIAL_PARAMETERS)) or "(none)"
                    raise ConfigError(f"{where}: unknown option {key!r}; valid: {listed}")
        missing = [n for n in named if parameters[n].default is inspect.Parameter.empty
                   and n != INITIAL_PARAMETERS and n not in self.options]
        if missing:
            raise ConfigError(f"{where}: missing required option(s) {', '.join(map(repr, missing))}")

    def _build(self, initial: list[np.ndarray]) -> Any:
        """A new instance of the wrapped class (``initial`` = its initial parameters)."""
        kwargs = dict(self.options)
        if INITIAL_PARAMETERS in inspect.signature(self.strategy_class).parameters:
            kwargs[INITIAL_PARAMETERS] = self._flower_common.ndarrays_to_parameters(initial)
        try:
            return self.strategy_class(**kwargs)
        except (TypeError, ValueError, AssertionError) as exc:
            raise ConfigError(f"FL strategy 'flower' ({self.strategy_name}): options {self.options!r}: {exc}") from None

    @property
    def flower_strategy(self) -> Any:
        """The wrapped Flower object (the probe until the first aggregation)."""
        return self._flower if self._flower is not None else self._probe

    # -- the contract ---------------------------------------------------------------

    def configure_fit(self, server_round: int, clients: Sequence[ClientInfo], rng) -> list[FitInstruction]:
        flower = self.flower_strategy
        ordered = sorted(clients, key=lambda info: info.client)
        sample_size, min_available = len(ordered), 0
        if hasattr(flower, "num_fit_clients"):
            sample_size, min_available = flower.num_fit_clients(len(ordered))
        if sample_size > len(ordered) or min_available > len(ordered):
            return []
        if sample_size < len(ordered):
            picked = np.sort(rng.choice(len(ordered), size=sample_size, replace=False))
            ordered = [ordered[i] for i in picked]
        config: dict[str, Any] = {"download": ALL, "upload": ALL, "train": ALL}
        on_fit_config = getattr(flower, "on_fit_config_fn", None)
        if on_fit_config is not None:
            config.update(on_fit_config(server_round))
        if hasattr(flower, "proximal_mu"):
            config["proximal_mu"] = flower.proximal_mu
        return [FitInstruction(client=info.client, config=dict(config)) for info in ordered]

    def aggregate_fit(self, server_round: int, results: Sequence[ClientUpdate], failures: Sequence[FitFailure],
                      current: State) -> State | None:
        self.last_metrics = {}
        if not results:
            return None
        keys = list(current)
        current_arrays = [_to_float_array(current[key]) for key in keys]
        flower_results = [(_proxy_class()(update.client), self._fit_res(update, keys)) for update in results]
        flower_failures = [ClientFitFailure(failure.client, failure.reason) for failure in failures]
        if self._flower is None:
            self._flower = self._build(current_arrays)
        self._sync_current(current_arrays)
        parameters, metrics = self._flower.aggregate_fit(server_round, flower_results, flower_failures)
        self.last_metrics = dict(metrics or {})
        if parameters is None:
            return None
        arrays = self._flower_common.parameters_to_ndarrays(parameters)
        if len(arrays) != len(keys):
            raise ValueError(f"Flower {self.strategy_name} returned {len(arrays)} arrays for {len(keys)} entries")
        return {key: _like(array, current[key], key) for key, array in zip(keys, arrays)}

    def evaluate(self, server_round: int, state: State) -> dict[str, float]:
        """The wrapped strategy's ``evaluate`` (its ``evaluate_fn`` option): ``loss`` plus
        its metrics; none without an ``evaluate_fn``."""
        flower = self.flower_strategy
        if getattr(flower, "evaluate_fn", None) is None:
            return {}
        parameters = self._flower_common.ndarrays_to_parameters([_to_float_array(v) for v in state.values()])
        answer = flower.evaluate(server_round, parameters)
        if answer is None:
            return {}
        loss, metrics = answer
        return {"loss": float(loss), **dict(metrics or {})}

    def _fit_res(self, update: ClientUpdate, keys: list[str]) -> Any:
        missing = [key for key in keys if key not in update.state]
        if missing:
            shown = ", ".join(map(repr, missing[:5])) + (", ..." if len(missing) > 5 else "")
            raise ValueError(f"client {update.client} uploaded no {shown} ({len(missing)} of {len(keys)} entries): "
                             f"Flower strategies need full models (upload 'all')")
        known = set(keys)
        extra = [key for key in update.state if key not in known]
        if extra:
            raise ValueError(f"client {update.client} uploaded entries the global model lacks: "
                             f"{', '.join(map(repr, extra[:5]))}")
        common = self._flower_common
        return common.FitRes(status=common.Status(code=common.Code.OK, message=""),
                             parameters=common.ndarrays_to_parameters([_to_float_array(update.state[k]) for k in keys]),
                             num_examples=int(update.num_samples), metrics=dict(update.metrics))

    def _sync_current(self, current_arrays: list[np.ndarray]) -> None:
        """Point the wrapped strategy's own copy of the global model at ``current``."""
        _, flower_strategies = _flower_modules()
        if isinstance(self._flower, flower_strategies.FedOpt):
            self._flower.current_weights = list(current_arrays)
        elif isinstance(self._flower, flower_strategies.FedAvgM) and self._flower.initial_parameters is not None:
            self._flower.initial_parameters = self._flower_common.ndarrays_to_parameters(current_arrays)

    # -- checkpoints ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The wrapped strategy's server-side state, pickle-free (strings, bools and torch
        tensors only, so ``torch.load(weights_only=True)`` reads it back).

        Saved: every attribute of the Flower object that is a numpy array, a non-empty
        list of numpy arrays (or numpy scalars) or a ``Parameters`` (e.g. FedAdam/FedYogi/FedAdagrad's
        ``m_t``, ``v_t``, ``current_weights``; FedAvgM's ``momentum_vector`` and
        ``initial_parameters``). Not saved: scalars and anything else (hyperparameters
        come from ``options``; e.g. the adaptive clip norm of the DP wrappers is lost).
        Layout: ``{"format", "strategy", "built", "attributes": {name: {"kind": "array" |
        "arrays" | "parameters", "values": tensor | [tensors]}}}``.
        """
        attributes: dict[str, Any] = {}
        if self._flower is not None:
            parameters_type = self._flower_common.Parameters
            for name, value in vars(self._flower).items():
                if isinstance(value, np.ndarray):
                    attributes[name] = {"kind": "array", "values": _tensor(value, name)}
                elif isinstance(value, list) and value and all(isinstance(v, _NUMPY_VALUE) for v in value):
                    attributes[name] = {"kind": "arrays", "values": [_tensor(v, name) for v in value]}
                elif isinstance(value, parameters_type):
                    arrays = self._flower_common.parameters_to_ndarrays(value)
                    attributes[name] = {"kind": "parameters", "values": [_tensor(v, name) for v in arrays]}
        return {"format": STATE_FORMAT, "strategy": self.strategy_name, "built": self._flower is not None,
                "attributes": attributes}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (same ``strategy`` class required)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"state format {state.get('format')!r} is not {STATE_FORMAT}")
        if state.get("strategy") != self.strategy_name:
            raise ValueError(f"state is of Flower strategy {state.get('strategy')!r}, this adapter wraps "
                             f"{self.strategy_name!r}")
        if not state.get("built"):
            self._flower = None
            return
        flower = self._build([])
        for name, entry in state.get("attributes", {}).items():
            kind, values = entry["kind"], entry["values"]
            if kind == "array":
                setattr(flower, name, values.numpy().copy())
            elif kind == "arrays":
                setattr(flower, name, [v.numpy().copy() for v in values])
            elif kind == "parameters":
                setattr(flower, name, self._flower_common.ndarrays_to_parameters([v.numpy() for v in values]))
            else:
                raise ValueError(f"attribute {name!r}: unknown kind {kind!r}")
        self._flower = flower


def _tensor(array: np.ndarray | np.generic, name: str) -> torch.Tensor:
    """A copy of ``array`` as a torch tensor (same dtype)."""
    try:
        return torch.from_numpy(np.array(array, copy=True))
    except TypeError:
        raise ValueError(f"attribute {name!r}: numpy dtype {array.dtype} has no torch equivalent") from None
