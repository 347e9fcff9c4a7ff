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
