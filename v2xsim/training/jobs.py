"""Trainings as independent jobs, so that a run's networks can train side by side.

A learned scheme lists what its :meth:`~v2xsim.schemes.base.Scheme.prepare` would train on
first use as :class:`TrainingJob` s (see
:meth:`~v2xsim.schemes.base.Scheme.training_jobs`). Each job fills the model store and
returns nothing; ``prepare`` then only loads. Jobs are plain picklable calls, so they can
run in worker processes; every training uses a fixed thread count
(:data:`~v2xsim.threads.TRAINING_TORCH_THREADS`), so a job trained in a worker gives the
same bits as the same job in this process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from v2xsim.progress import line_mode, quiet_mode


@dataclass(frozen=True, kw_only=True)
class TrainingJob:
    """One training that fills the model store.

    Attributes:
        label: what it trains, for progress output (e.g. "GBA-RSU").
        key: the checkpoint it writes (jobs with equal keys are the same job).
        function: the call that trains (picklable: a module-level function or a
            ``functools.partial`` of one).
    """

    label: str
    key: str
    function: Callable[[], Any]


def job(label: str, key: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> TrainingJob:
    """A :class:`TrainingJob` calling ``function(*args, **kwargs)``."""
    return TrainingJob(label=label, key=key, function=functools.partial(function, *args, **kwargs))


def run_job(training: TrainingJob, quiet: bool = False, lines: bool = True) -> str:
    """Run one job (in a worker process: progress as whole lines, ``lines``); returns its key."""
    with quiet_mode(quiet), line_mode(lines):
        training.function()
    return training.key


def unique_jobs(jobs: list[TrainingJob]) -> list[TrainingJob]:
    """``jobs`` without repeats (same key), in first-seen order."""
    seen: dict[str, TrainingJob] = {}
    for item in jobs:
        seen.setdefault(item.key, item)
    return list(seen.values())
