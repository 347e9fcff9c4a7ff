"""Load the native modules with a short OpenMP spin.

After a parallel kernel, GNU OpenMP's idle workers spin for a long while (300,000 spins by
default) before they sleep. Between an optimizer step and the next batch's BLAS products that
spinning takes a core from BLAS's own threads: on 2 cores a large MLP step was a third slower.
Unless the user chose a policy (GOMP_SPINCOUNT or OMP_WAIT_POLICY), fastgd's OpenMP runtime
starts with a spin of 10,000, which keeps back-to-back kernels fast and frees the core soon
after. The variable is set only while libgomp initialises (it reads it once, when loaded) and
removed again, so no library loaded later sees it.
"""
import os

SPINCOUNT = "10000"


def load() -> None:
    ours = "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ
    if ours:
        os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    try:
        # loads fastgd's BLAS (libscipy_openblas.so) by its soname before the modules that
        # link it, wherever the package is installed (the modules' RPATH covers the usual case)
        import scipy_openblas32  # noqa: F401

        from . import _nn, _optim  # noqa: F401  (loading them starts libgomp)
    finally:
        if ours:
            os.environ.pop("GOMP_SPINCOUNT", None)
