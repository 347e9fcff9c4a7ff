import numpy as np
import pytest

import fastgd
from helpers import BACKENDS, DTYPES, TOL

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "fastgd", max_examples=40, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.load_profile("fastgd")
except ImportError:  # pragma: no cover - hypothesis is a test requirement
    pass


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    """float32 and float64, the two parameter dtypes."""
    return np.dtype(request.param)


@pytest.fixture
def tol(dtype):
    """assert_allclose tolerances for native-vs-reference style comparisons in ``dtype``."""
    return TOL[dtype]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name, so every test is reproducible on its own."""
    seed = sum(map(ord, request.node.nodeid)) * 7919
    return np.random.default_rng(seed)


@pytest.fixture
def threads():
    """``threads(n)`` sets fastgd's thread count; the setting is restored afterwards."""
    before = fastgd.get_num_threads()
    yield fastgd.set_num_threads
    fastgd.set_num_threads(None)
    if fastgd.get_num_threads() != before:
        fastgd.set_num_threads(before)
