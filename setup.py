"""Build script for the Cython kernels (metadata lives in pyproject.toml).

Every ``kernels/_*.pyx`` becomes ``streamface.kernels._*``. OpenMP is used when
the compiler accepts ``-fopenmp``; otherwise the kernels build serial (``prange``
degrades to ``range``), so a laptop compiler without OpenMP still installs.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from glob import glob
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent.resolve()


def compiler_has_openmp() -> bool:
    """Try to compile and link a tiny OpenMP program with the default C compiler."""
    if os.environ.get("STREAMFACE_NO_OPENMP"):
        return False
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None or sys.platform == "win32":
        return False
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c_file = Path(tmp, "omp_check.c")
        c_file.write_text(src)
        cmd = [cc, "-fopenmp", str(c_file), "-o", str(Path(tmp, "omp_check"))]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode == 0


def kernel_extensions():
    openmp = compiler_has_openmp()
    flags = ["-O3", "-fno-math-errno"] + (["-fopenmp"] if openmp else [])
    print(f"streamface: building kernels {'with' if openmp else 'without'} OpenMP")
    extensions = []
    # STREAMFACE_KERNELS=_quality,_geometry builds only those (quick rebuilds while developing).
    only = {n for n in os.environ.get("STREAMFACE_KERNELS", "").split(",") if n}
    for pyx in sorted(glob("kernels/_*.pyx")):
        if only and Path(pyx).stem not in only:
            continue
        name = "streamface.kernels." + Path(pyx).stem
        extensions.append(
            Extension(
                name,
                [pyx],
                include_dirs=[numpy.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=flags,
                extra_link_args=["-fopenmp"] if openmp else [],
            )
        )
    return cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(ext_modules=kernel_extensions())
