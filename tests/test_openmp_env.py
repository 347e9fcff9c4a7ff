"""fastgd starts its OpenMP runtime with a short spin without leaking the setting."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastgd


def _run(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_spin_setting_does_not_leak_into_the_environment():
    assert _run("import os, fastgd; print(os.environ.get('GOMP_SPINCOUNT'))") == "None"


def test_user_choice_is_kept():
    out = _run("import os, fastgd; print(os.environ.get('GOMP_SPINCOUNT'), "
               "os.environ.get('OMP_WAIT_POLICY'))", OMP_WAIT_POLICY="active")
    assert out == "None active"


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                      ("2", TypeError), (True, TypeError)])
def test_set_num_threads_rejects_bad_values(bad, exc):
    with pytest.raises(exc, match="n must be"):
        fastgd.set_num_threads(bad)


def test_set_num_threads_round_trip():
    before = fastgd.get_num_threads()
    try:
        fastgd.set_num_threads(1)
        assert fastgd.get_num_threads() == 1
        fastgd.set_num_threads(None)
        assert fastgd.get_num_threads() >= 1
    finally:
        fastgd.set_num_threads(before)


_PIN_CODE = """
import os, numpy as np, fastgd
fastgd.set_num_threads(2)
p = [np.zeros(1 << 18, np.float32)]
fastgd.optim.Adam(p, lr=1e-3).step([np.ones_like(p[0])])
main = os.getpid()
masks = {}
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list"):
                masks[int(tid)] = line.split(":")[1].strip()
print(masks[main], "|", ",".join(sorted(m for t, m in masks.items() if t != main)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="binding OpenMP workers is done on Linux with 2 or more CPUs")
@pytest.mark.parametrize("env, bound", [({}, True), ({"FASTGD_PIN_WORKERS": "0"}, False),
                                        ({"OMP_PROC_BIND": "false"}, False)])
def test_openmp_workers_are_bound_unless_told_not_to(env, bound):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this process may use only one CPU")
    main_mask, others = _run(_PIN_CODE, **env).split("|")
    allowed = main_mask.strip()
    assert "-" in allowed or "," in allowed          # the main thread is never bound
    single = [m for m in others.strip().split(",") if m and "-" not in m]
    assert bool(single) == bound
    assert fastgd.config()["native"]["pins_workers"] is ("FASTGD_PIN_WORKERS" not in os.environ)


# ----------------------------------------------------------------------------- subnormals

@pytest.fixture
def flush():
    before = fastgd.get_flush_denormal()
    yield fastgd.set_flush_denormal
    fastgd.set_flush_denormal(before)


def _adam_on_subnormal_moment(n):
    """One Adam step whose first moment becomes subnormal: m + 0.1 (0 - m) with m = 1.2e-38
    (the product 1.2e-39 and the result 1.08e-38 are below 1.18e-38)."""
    p = np.ones(n, np.float32)
    opt = fastgd.optim.Adam([p], lr=1e-3)
    opt.step([np.full(n, 1e-3, np.float32)])
    opt.state[0]["exp_avg"][...] = np.float32(1.2e-38)
    opt.step([np.zeros(n, np.float32)])
    return opt.state[0]["exp_avg"], p


def test_flush_denormal_is_off_by_default_and_checks_its_argument(flush):
    assert fastgd.get_flush_denormal() is False
    with pytest.raises(TypeError, match="mode must be a bool"):
        flush(1)
    assert fastgd.get_flush_denormal() is False


@pytest.mark.parametrize("n, nthreads", [(5, 1), (1 << 18, 2)])
def test_flush_denormal_flushes_subnormal_results_of_the_updates(flush, threads, n, nthreads):
    threads(nthreads)
    m, _ = _adam_on_subnormal_moment(n)
    tiny = np.finfo(np.float32).tiny
    assert np.all((m > 0) & (m < tiny))                 # IEEE: gradual underflow
    if not flush(True):
        pytest.skip("flushing subnormals is supported on x86-64 only")
    m2, _ = _adam_on_subnormal_moment(n)
    # the subnormal product (1 - beta1) * m is flushed, on every thread's part: m stays at
    # its normal value instead of underflowing
    assert np.all(m2 == np.float32(1.2e-38)) and not np.any((m2 > 0) & (m2 < tiny))
    # the caller's own floating-point setting is untouched: numpy still underflows gradually
    assert np.float32(1.2e-38) * np.float32(0.5) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_denormal_changes_nothing_without_subnormals(flush, dtype):
    rng = np.random.default_rng(0)
    out = []
    for mode in (False, True):
        flush(mode)
        p = rng.standard_normal(1000).astype(dtype)
        opt = fastgd.optim.Adam([p], lr=1e-2, weight_decay=1e-2)
        g = np.random.default_rng(1).standard_normal(1000).astype(dtype)
        for _ in range(20):
            opt.step([g])
        out.append((p.copy(), opt.state[0]["exp_avg"].copy(), opt.state[0]["exp_avg_sq"].copy()))
        rng = np.random.default_rng(0)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
