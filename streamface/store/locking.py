"""One writer per stream: an OS lock on local disk, a lease object elsewhere.

Local stores
    The writer takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<stream>/writer.lock``
    and writes its holder (host, pid, start time) into the file. The kernel drops
    the lock when the process dies, however it dies, so a SIGKILLed writer never
    blocks the writer that resumes after it. (On file systems where ``flock`` is
    not honoured, e.g. some NFS mounts, use a URL to get a lease instead.)

fsspec stores (``memory://``, ``s3://``, ...)
    There is no lock to take, so the writer writes a lease object
    ``<stream>/writer.lease`` = ``{"host", "pid", "since", "heartbeat", "token"}``
    and refreshes ``heartbeat`` on every commit. A new writer may take over a
    lease when, and only when:

    1. no lease exists, or
    2. the lease names this host and a process id that is no longer alive, or
    3. the lease's heartbeat is older than ``ttl`` seconds (expired), or
    4. the caller passes ``force=True``.

    Otherwise it gets :class:`~streamface.store.errors.StoreLockedError` naming
    the holder. Before every commit the writer checks that the lease still
    carries its token, so a writer whose lease was taken over stops instead of
    writing over its successor. Object stores give no compare-and-swap here, so
    two writers starting in the same instant can both believe they won; the
    read-back after writing narrows, but does not close, that window.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from streamface.store.errors import StoreLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "writer.lock"
LEASE_FILE = "writer.lease"


def _holder() -> dict[str, Any]:
    now = time.time()
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
        "heartbeat": now,
        "token": uuid.uuid4().hex,
    }


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another writer (holder unknown)"
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {holder.get('since', '?')}"


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WriterLock(Protocol):
    """What a stream writer needs from its lock."""

    def acquire(self) -> None: ...

    def check(self) -> None:
        """Raise StoreLockedError if the lock was lost; refresh it if it expires."""

    def release(self) -> None: ...


class FileLock:
    """``fcntl.flock`` on a lock file (local stores).

    Parameters
    ----------
    path : Path
        The lock file, ``<stream dir>/writer.lock``.
    stream : str
        Stream name, for messages.
    """

    def __init__(self, path: Path, stream: str) -> None:
        if fcntl is None:  # pragma: no cover
            raise OSError("fcntl is not available on this platform")
        self.path = Path(path)
        self.stream = stream
        self._file = None

    def acquire(self) -> None:
        """Take the lock or raise StoreLockedError naming the holder."""
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                holder = json.loads(f.read() or "null")
            except ValueError:
                holder = None
            f.close()
            raise StoreLockedError(
                f"stream {self.stream!r} is being written by {_describe(holder)} (lock {self.path})"
            ) from None
        except BaseException:
            f.close()
            raise
        f.seek(0)
        f.truncate()
        f.write(json.dumps(_holder()))
        f.flush()
        self._file = f

    def check(self) -> None:
        """Nothing to check: the kernel keeps the lock while this process lives."""

    def release(self) -> None:
        if self._file is not None:
            try:
                self._file.seek(0)
                self._file.truncate()
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None


class LeaseLock:
    """A lease object on an fsspec file system (see the module docstring for the takeover rule).

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
    path : str
        The lease object, ``<stream path>/writer.lease``.
    stream : str
        Stream name, for messages.
    ttl : float
        Seconds after the last heartbeat at which the lease expires.
    force : bool
        Take the lease over whoever holds it.
    """

    def __init__(self, fs, path: str, stream: str, *, ttl: float = 300.0, force: bool = False) -> None:
        self.fs = fs
        self.path = path
        self.stream = stream
        self.ttl = float(ttl)
        self.force = force
        self._mine: dict[str, Any] | None = None

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except ValueError:  # unreadable lease: treat as expired
            return {"heartbeat": 0.0}

    def _can_take(self, holder: dict[str, Any] | None) -> bool:
        if holder is None or self.force:
            return True
        if holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", -1))):
            return True
        return time.time() - float(holder.get("heartbeat", 0.0)) > self.ttl

    def acquire(self) -> None:
        """Take the lease or raise StoreLockedError naming the holder."""
        holder = self._read()
        if not self._can_take(holder):
            raise StoreLockedError(
                f"stream {self.stream!r} is being written by {_describe(holder)} (lease {self.path}, "
                f"expires {self.ttl:.0f} s after its last heartbeat; pass force=True to take it over)"
            )
        mine = _holder()
        self.fs.pipe_file(self.path, json.dumps(mine).encode())
        if (self._read() or {}).get("token") != mine["token"]:
            raise StoreLockedError(f"stream {self.stream!r}: another writer took the lease {self.path} first")
        self._mine = mine

    def check(self) -> None:
        """Raise if our lease was taken over; refresh its heartbeat when a quarter of ``ttl`` has passed."""
        if self._mine is None:
            raise StoreLockedError(f"stream {self.stream!r}: writer holds no lease")
        holder = self._read()
        if not holder or holder.get("token") != self._mine["token"]:
            raise StoreLockedError(
                f"stream {self.stream!r}: lease {self.path} was taken over by {_describe(holder)}; stopping"
            )
        if time.time() - self._mine["heartbeat"] > self.ttl / 4:
            self._mine["heartbeat"] = time.time()
            self.fs.pipe_file(self.path, json.dumps(self._mine).encode())

    def release(self) -> None:
        if self._mine is None:
            return
        try:
            holder = self._read()
            if holder and holder.get("token") == self._mine["token"]:
                self.fs.rm_file(self.path)
        finally:
            self._mine = None
