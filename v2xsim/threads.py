"""PyTorch thread counts: one place that says how many intra-op threads each kind of work
uses, and a context manager to apply it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

#: PyTorch intra-op threads of a process running sweep points (as the local executor's
#: workers have): more threads than cores left per point only oversubscribe the CPU
POINT_TORCH_THREADS = 1

#: PyTorch intra-op threads of every training (GBA-RSU, GBA-VEHICLE). Fixed, so that the
#: trained bits do not depend on the machine's core count (PyTorch's reductions split
#: work differently for different thread counts), and because two trainings side by side
#: on two cores are faster than one after the other on two threads each
TRAINING_TORCH_THREADS = 1


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the body with ``count`` PyTorch threads, then restore the previous setting."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
