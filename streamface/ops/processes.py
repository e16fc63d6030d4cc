"""Independent pieces of work on the cores of this machine, without Ray.

:class:`ProcessExecutor` is an :class:`~streamface.ops.ray_pool.Executor` whose workers are
forked processes: the large shared input (the embeddings) is inherited from this process's
memory, copy-on-write, instead of being pickled to each worker; only the pieces (row indices)
and their results (labels) travel. It is what runs the per-component linkages of the ``knn``
clustering on every core: two threads ran four SciPy linkages only 1.13x faster than one
on 2 cores (the linkage holds the GIL), while two workers took the level-1 linkages of 300k
generated faces from 15.7 s to 12.2 s (benchmarks/bench_clustering.py --workers 2).

The pieces and their order are those of :class:`~streamface.ops.ray_pool.LocalExecutor`, so
the results are the same. Off Linux (no ``fork`` on Windows; on macOS forking a process that
has used the system's BLAS is not safe) or with one piece or one worker, the pieces run here.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from streamface.checks import check_int
from streamface.ops.ray_pool import LocalExecutor

__all__ = ["ProcessExecutor"]

# A worker's function and shared input, set once in each forked worker by its initializer.
# Module state of the worker process only; this process never sets it.
_worker: dict = {}


def _install(func, shared) -> None:
    _worker["func"], _worker["shared"] = func, shared


def _run(item):
    return _worker["func"](_worker["shared"], item)


class ProcessExecutor:
    """Run ``func(shared, item)`` for every item on ``workers`` forked processes; results in order.

    Parameters
    ----------
    workers : int or None, default None
        Processes; None: the CPUs this process may use.

    Examples
    --------
    >>> import numpy as np
    >>> ProcessExecutor(2).map(lambda x, rows: float(x[rows].sum()), [[0, 1], [2]], shared=np.arange(3.0))
    [1.0, 2.0]
    """

    def __init__(self, workers: int | None = None) -> None:
        check_int("workers", workers, optional=True)
        if workers is None:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.workers = workers
        #: Read by the code that cuts the work, to make a few pieces per worker.
        self.cpus = self.workers

    def map(self, func: Callable[[Any, Any], Any], items: Iterable, shared: Any = None) -> list:
        items = list(items)
        if self.workers < 2 or len(items) < 2 or not sys.platform.startswith("linux"):
            return LocalExecutor().map(func, items, shared)
        context = multiprocessing.get_context("fork")
        with context.Pool(min(self.workers, len(items)), initializer=_install, initargs=(func, shared)) as pool:
            return pool.map(_run, items, chunksize=1)

    def map_actors(self, cls: type, args: tuple, method: str, items: Iterable) -> Iterator:
        """Here, one after the other (a model per forked worker would be loaded again in each)."""
        return LocalExecutor().map_actors(cls, args, method, items)
