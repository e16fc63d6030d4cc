"""Write a file so that readers see either the old file or the new one, never half of it.

The one atomic file writer of the project: the model cache, annotations, status snapshots,
exports and the index all write through it. It uses only the standard library, so every
layer may import it (see docs/architecture.md).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or the new one.

    Parameters
    ----------
    path : str or PathLike
        The file; its folder is made if missing.
    data : bytes
    fsync : bool, default True
        Flush the data to the disk before the rename, so that even a power loss leaves the
        old file or the whole new one. Without it a killed process still never leaves half
        a file (the rename comes after the write); files that can be made again from the
        store (exported crops) skip it, since thousands of flushes cost seconds.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
