"""Describe the machine a benchmark ran on, for its JSON results.

Benchmarks run as scripts (``python benchmarks/bench_x.py``) import it as
``from hardware import describe_hardware``. Only the standard library is needed;
library versions are reported when the library is importable.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata


def cpu_model() -> str:
    """CPU model name (Linux ``/proc/cpuinfo``, macOS ``sysctl``, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        brand = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if brand:
            return brand
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity / cgroup cpuset), not the host's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs from ``nvidia-smi`` (empty when it is absent or fails)."""
    if shutil.which("nvidia-smi") is None:
        return []
    out = _run(
        [
            "nvidia-smi",
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader",
        ]
    )
    found = []
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            found.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return found


#: Distributions whose versions matter when comparing numbers (reported if installed).
LIBRARIES = (
    "numpy",
    "Cython",
    "opencv-python-headless",
    "opencv-python",
    "opencv-contrib-python",
    "onnxruntime",
    "onnxruntime-gpu",
    "torch",
    "tensorrt",
)


def library_versions(names=LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (read from package metadata, nothing imported)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe_hardware() -> dict:
    """Everything needed to compare benchmark numbers across machines.

    Returns
    -------
    dict
        ``cpu``, ``cores_logical`` (host), ``cores_usable`` (this process),
        ``memory_gib``, ``machine``, ``os``, ``python``, ``libraries`` (installed
        versions)
        and ``gpus`` (list of ``{name, memory, driver}``, empty without NVIDIA).
    """
    return {
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": usable_cores(),
        "memory_gib": memory_gib(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "gpus": gpus(),
    }


def _run(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


if __name__ == "__main__":
    import json

    print(json.dumps(describe_hardware(), indent=2))
