"""Check the layer contract in ``.importlinter`` with import-linter.

import-linter walks a package's folder on disk, but ``streamface.engine`` and
``streamface.kernels`` live in the top-level ``engine/`` and ``kernels/`` folders (the
``package-dir`` mapping in pyproject.toml), so walking ``streamface/`` alone misses them.
This script copies the Python sources into a temporary tree laid out as the installed
package is, then runs ``lint-imports`` on it. Exit status: lint-imports's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Folder in the repository -> where it sits inside the installed ``streamface`` package.
LAYOUT = {"streamface": ".", "engine": "engine", "kernels": "kernels"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="streamface-lint.") as tmp:
        package = Path(tmp, "streamface")
        for folder, place in LAYOUT.items():
            for source in (REPO / folder).rglob("*.py"):
                target = package / place / source.relative_to(REPO / folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        env = dict(os.environ, PYTHONPATH=tmp)
        lint = shutil.which("lint-imports") or "lint-imports"
        return subprocess.run([lint, str(REPO / ".importlinter")], cwd=tmp, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
