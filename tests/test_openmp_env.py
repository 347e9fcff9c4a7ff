"""fastgd starts its OpenMP runtime with a short spin without leaking the setting."""
import os
import subprocess
import sys

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
