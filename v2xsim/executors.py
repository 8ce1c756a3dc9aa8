"""Executors: where the points of a sweep run (plug-ins of :data:`v2xsim.registry.EXECUTOR`).

A sweep point is a pure function of its inputs (scenario x speed x K x seed); an executor
calls ``function(*arguments)`` for every point and yields ``(index, result)`` as points
finish, in any order. ``local`` (the default) is a pool of worker processes on this
machine; ``serial`` runs in the calling process; ``dask`` runs on a Dask cluster (a local
one, or an existing scheduler: see docs/cluster.md; needs the ``dist`` extra).

An executor is also a context manager: ``with create_executor("dask", ...) as executor``
connects (and fails early, e.g. on an unreachable scheduler) before any work starts, and
releases the cluster at the end. ``map`` also works without it.

Local workers die with the process that started them: each worker exits as soon as its
parent is gone (killed, or ended by a batch system's time limit), so an interrupted sweep
leaves nothing running.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence

from v2xsim.cache import config_json
from v2xsim.errors import ConfigError
from v2xsim.registry import EXECUTOR

#: how often a worker checks that its parent is still alive [s]
PARENT_POLL_S = 0.5
#: Linux prctl option: signal this process when its parent dies
_PR_SET_PDEATHSIG = 1


class Executor(ABC):
    """Runs independent sweep points."""

    #: points that may run at once
    workers: int = 1

    @abstractmethod
    def map(self, function: Callable[..., Any], arguments: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, function(*arguments[index]))`` for every index as it finishes."""

    def open(self) -> None:
        """Acquire what ``map`` runs on ahead of time (default: nothing to do)."""

    def close(self) -> None:
        """Release what :meth:`open` acquired (default: nothing to do)."""

    def __enter__(self) -> "Executor":
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@EXECUTOR.register("serial")
class SerialExecutor(Executor):
    """Every point in this process, in the given order."""

    def map(self, function, arguments):
        for index, args in enumerate(arguments):
            yield index, function(*args)


def _die_with_parent(parent_pid: int) -> None:
    """Worker initialiser: exit when the parent process is gone.

    Linux delivers SIGKILL at once (``PR_SET_PDEATHSIG``); everywhere, a daemon thread
    also polls the parent id and ends the worker when it changes.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the thread below still watches
            pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="v2xsim-parent-watch", daemon=True).start()


def _worker_init(parent_pid: int, torch_threads: int | None) -> None:
    _die_with_parent(parent_pid)
    if torch_threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(torch_threads))
        try:
            import torch

            torch.set_num_threads(torch_threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass


@EXECUTOR.register("local")
class LocalExecutor(Executor):
    """A pool of worker processes on this machine (``spawn``: clean interpreters).

    Args:
        workers: processes (default: up to 2, never more than the CPU count).
        torch_threads: PyTorch threads per worker (None: PyTorch's default, one per core).
            One thread per worker is the default: with two workers on two cores, PyTorch's
            default thread pools oversubscribe the cores and the headline sweep took 3.5x
            longer (measured: 125 s vs 36 s of wall time).
    """

    def __init__(self, *, workers: int | None = None, torch_threads: int | None = 1) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers or min(2, os.cpu_count() or 1)
        self.torch_threads = torch_threads

    def map(self, function, arguments):
        if self.workers <= 1 or len(arguments) <= 1:
            yield from SerialExecutor().map(function, arguments)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.workers, len(arguments)), mp_context=context,
                                 initializer=_worker_init, initargs=(os.getpid(), self.torch_threads)) as pool:
            futures = {pool.submit(function, *args): index for index, args in enumerate(arguments)}
            for future in as_completed(futures):
                yield futures[future], future.result()


# ------------------------------------------------------------------ Dask
#: the extra that installs the Dask executor's dependencies
DIST_EXTRA = "pip install 'v2xsim[dist]'"
_torch_threads_set = False


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"the dask executor needs dask[distributed], which is not installed: {DIST_EXTRA}") from None
    return distributed


def _dask_call(function: Callable[..., Any], args: tuple) -> Any:
    """Runs one point on a Dask worker, with one PyTorch thread (the worker has one thread
    per point; more would oversubscribe its cores)."""
    global _torch_threads_set
    if not _torch_threads_set:
        _torch_threads_set = True
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
    return function(*args)


def _argument_bytes(value: Any) -> bytes:
    """Stable bytes of one argument: canonical JSON of a pydantic model (the scenario), else
    its pickle; an argument that cannot be pickled gets a key of its own (never shared)."""
    if hasattr(value, "model_dump"):
        return config_json(value.model_dump(mode="json")).encode()
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - only the key is at stake
        return f"{type(value).__qualname__}@{id(value)}@{time.time_ns()}".encode()


def point_key(function: Callable[..., Any], args: tuple) -> str:
    """The Dask key of one point: a hash of the function and its arguments, so equal points
    share one task and different ones never do."""
    digest = hashlib.sha256(f"{function.__module__}.{function.__qualname__}".encode())
    for value in args:
        data = _argument_bytes(value)
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return f"v2xsim-point-{digest.hexdigest()[:32]}"


@EXECUTOR.register("dask")
class DaskExecutor(Executor):
    """Points as tasks of a Dask cluster (needs ``dask[distributed]``: the ``dist`` extra).

    Args:
        scheduler: address of a running scheduler (``tcp://host:8786``); None starts a
            local cluster of worker processes for this run.
        workers: processes of the local cluster (default 2; ignored with ``scheduler``).
        local_directory: scratch space of the local cluster (default: a temporary folder,
            removed at the end).
        retries: times a point that raised is run again (transient trouble such as a shared
            cache being written; Dask itself reschedules the points of a worker it lost).
        timeout_s: how long to try to reach ``scheduler`` before giving up.
    """

    def __init__(self, *, scheduler: str | None = None, workers: int | None = None,
                 local_directory: str | None = None, retries: int = 2, timeout_s: float = 10.0) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if scheduler is not None and not str(scheduler).strip():
            raise ValueError("scheduler must be an address such as tcp://host:8786")
        self.scheduler = scheduler
        self.workers = workers or 2
        self.local_directory = local_directory
        self.retries = retries
        self.timeout_s = timeout_s
        self.client: Any = None
        self._resources: contextlib.ExitStack | None = None

    def open(self) -> None:
        """Connect to the scheduler, or start the local cluster (once)."""
        if self.client is not None:
            return
        distributed = _import_distributed()
        stack = contextlib.ExitStack()
        try:
            if self.scheduler is not None:
                try:
                    client = distributed.Client(self.scheduler, timeout=self.timeout_s)
                except (OSError, ValueError, TypeError) as error:
                    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    raise ConfigError(f"--scheduler {self.scheduler}: cannot reach a Dask scheduler there "
                                      f"({reason})") from None
                stack.callback(client.close)
            else:
                directory = self.local_directory
                if directory is None:
                    directory = tempfile.mkdtemp(prefix="v2xsim-dask-")
                    stack.callback(shutil.rmtree, directory, ignore_errors=True)
                # worker processes are children of this process and exit when it is gone
                # (Dask's nanny keeps a pipe open to each; a killed parent closes it)
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True, local_directory=directory,
                    dashboard_address=None, silence_logs=logging.ERROR))
                client = stack.enter_context(distributed.Client(cluster))
        except BaseException:
            stack.close()
            raise
        self.client, self._resources = client, stack

    def close(self) -> None:
        """Disconnect (and stop the local cluster: a point still running there is killed
        after Dask's grace period of about 4 s)."""
        resources, self._resources, self.client = self._resources, None, None
        if resources is None:
            return
        # shutting down, e.g. after Ctrl-C, Dask logs the tasks and connections it drops
        logger = logging.getLogger("distributed")
        level = logger.level
        logger.setLevel(logging.CRITICAL)
        try:
            resources.close()
        finally:
            logger.setLevel(level)

    def map(self, function, arguments):
        if not arguments:
            return
        owned = self.client is None
        if owned:
            self.open()
        distributed = _import_distributed()
        client = self.client
        pending: dict[Any, list[int]] = {}
        try:
            by_key: dict[str, list[int]] = {}
            for index, args in enumerate(arguments):
                by_key.setdefault(point_key(function, args), []).append(index)
            for key, indices in by_key.items():
                future = client.submit(_dask_call, function, arguments[indices[0]], key=key, retries=self.retries)
                pending[future] = indices
            for future in distributed.as_completed(list(pending)):
                result = future.result()
                indices = pending.pop(future)
                future.release()  # the cluster may forget it
                for index in indices:
                    yield index, result
        finally:
            if pending:  # interrupted (or a point failed): the cluster need not finish the rest
                with contextlib.suppress(Exception):
                    client.cancel(list(pending))
            if owned:
                self.close()


def create_executor(name: str = "local", **options: Any) -> Executor:
    """The executor registered as ``name`` (unknown names list the valid ones)."""
    return EXECUTOR.create(name, options)
