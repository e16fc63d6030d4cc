"""Jobs that run as Ray tasks when one machine is not enough (``--ray [ADDRESS]``).

The work is cut into independent pieces by the code that owns it (clustering
batches and components, ranges of faces to embed); an executor runs a function
over those pieces and returns the results in order. :class:`LocalExecutor` runs
them in this process; :class:`RayPool` runs them as Ray tasks, with the large
shared input (the embeddings) put into Ray's object store once rather than
shipped with every task. Because the pieces and their order are the same, a Ray
run gives exactly the single-machine result.

Ray is an optional extra: ``pip install "streamface[ray]"``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from streamface.checks import check_int

__all__ = ["Executor", "LocalExecutor", "RayPool", "RayUnavailableError"]


class RayUnavailableError(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


class Executor(Protocol):
    """Runs ``func(shared, item)`` for every item; results in item order."""

    def map(self, func: Callable[[Any, Any], Any], items: Iterable, shared: Any = None) -> list: ...

    def map_actors(self, cls: type, args: tuple, method: str, items: Iterable) -> Iterator:
        """``cls(*args).method(item)`` for every item, by workers that each build ``cls`` once
        (models loaded once per worker); results in item order, as they come."""


class LocalExecutor:
    """The pieces one after the other, in this process (the default)."""

    def map(self, func, items, shared=None) -> list:
        return [func(shared, item) for item in items]

    def map_actors(self, cls: type, args: tuple, method: str, items: Iterable) -> Iterator:
        worker = cls(*args)
        return (getattr(worker, method)(item) for item in items)


def _call(func, shared, item):
    # One plain function for Ray to wrap: ``func`` may be a partial or a builtin,
    # which ``ray.remote`` does not accept itself.
    return func(shared, item)


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a cluster address nobody answers (Ray itself retries for minutes)."""
    hostport = address.split("://", 1)[-1]
    if hostport == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise RayUnavailableError(f"Ray: cannot reach the cluster at {address} ({reason})") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailableError("Ray is not installed: pip install \"streamface[ray]\"") from None
    return ray


class RayPool:
    """Ray tasks on a local instance or an existing cluster.

    Parameters
    ----------
    address : str or None, default None
        None starts a Ray instance on this machine for the lifetime of the pool;
        ``"auto"`` joins the cluster this machine belongs to; ``"HOST:PORT"`` or
        ``"ray://HOST:PORT"`` joins that cluster. A pool never shuts down a
        cluster it did not start.
    num_cpus : int or None, default None
        CPUs of a local instance (default: all). Ignored when joining a cluster.
    task_cpus : float, default 1
        CPUs each task asks for (the scheduler runs ``num_cpus / task_cpus`` at once).

    Examples
    --------
    >>> with RayPool(num_cpus=2) as pool:                           # doctest: +SKIP
    ...     pool.map(lambda shared, k: shared[k], range(3), shared=[10, 20, 30])
    [10, 20, 30]
    """

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 task_cpus: float = 1.0) -> None:
        check_int("num_cpus", num_cpus, optional=True)
        if not task_cpus > 0:
            raise ValueError(f"task_cpus: expected a number > 0, got {task_cpus!r}")
        self.address = address
        self.num_cpus = num_cpus
        self.task_cpus = task_cpus
        self._ray = None
        self._started = False

    def __enter__(self) -> RayPool:
        ray = _import_ray()
        if not ray.is_initialized():
            # Ray's own logging of worker output goes to the driver's terminal by
            # default; our tasks report through return values instead.
            options = dict(include_dashboard=False, log_to_driver=False,
                           configure_logging=False)
            if self.address is None:
                options["num_cpus"] = self.num_cpus or os.cpu_count() or 1
                # The local workers use this process's model cache.
                home = {k: os.environ[k] for k in ("STREAMFACE_HOME",) if k in os.environ}
                if home:
                    options["runtime_env"] = {"env_vars": home}
            else:
                _probe(self.address)
            try:
                ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a local instance"
                raise RayUnavailableError(f"Ray: cannot start or join {where}: "
                                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            self._started = True
        self._ray = ray
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False
        self._ray = None

    @property
    def cpus(self) -> int:
        """CPUs the cluster offers."""
        return int(self._require().cluster_resources().get("CPU", 1))

    def _require(self):
        if self._ray is None:
            raise RuntimeError("RayPool: use it inside 'with RayPool(...) as pool:'")
        return self._ray

    def map(self, func: Callable[[Any, Any], Any], items: Iterable, shared: Any = None) -> list:
        """``[func(shared, item) for item in items]``, each call a Ray task."""
        ray = self._require()
        items = list(items)
        if not items:
            return []
        remote = ray.remote(num_cpus=self.task_cpus, max_retries=2)(_call)
        # A top-level ObjectRef argument is resolved by Ray before the call, so
        # every task reads the same copy from the object store.
        shared_ref = ray.put(shared)
        return ray.get([remote.remote(func, shared_ref, item) for item in items])

    def map_actors(self, cls: type, args: tuple, method: str, items: Iterable,
                   workers: int | None = None) -> Iterator:
        """``cls(*args).method(item)`` for every item on ``workers`` Ray actors (default: one
        per ``task_cpus`` of the cluster), each building ``cls`` once; results in item order,
        yielded as they come (the caller can commit them while the rest run)."""
        from ray.util import ActorPool

        ray = self._require()
        items = list(items)
        if not items:
            return iter(())
        count = min(len(items), workers or max(1, int(self.cpus / self.task_cpus)))
        remote = ray.remote(num_cpus=self.task_cpus, max_restarts=2, max_task_retries=2)(cls)
        actors = ActorPool([remote.remote(*args) for _ in range(count)])
        return actors.map(lambda actor, item: getattr(actor, method).remote(item), items)
