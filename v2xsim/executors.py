"""Executors: where the points of a sweep run (plug-ins of :data:`v2xsim.registry.EXECUTOR`).

A sweep point is a pure function of its inputs (scenario x speed x K x seed); an executor
calls ``function(*arguments)`` for every point and yields ``(index, result)`` as points
finish, in any order. ``local`` (the default) is a pool of worker processes on this
machine; ``serial`` runs in the calling process.

Local workers die with the process that started them: each worker exits as soon as its
parent is gone (killed, or ended by a batch system's time limit), so an interrupted sweep
leaves nothing running.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence

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
        torch_threads: PyTorch threads per worker (None: PyTorch's default).
    """

    def __init__(self, *, workers: int | None = None, torch_threads: int | None = None) -> None:
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


def create_executor(name: str = "local", **options: Any) -> Executor:
    """The executor registered as ``name`` (unknown names list the valid ones)."""
    return EXECUTOR.create(name, options)
