"""The type stubs of the spec-built constructors and functional updates: in step with the
specs, and what a type checker sees in a user's program."""
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_stubs_are_those_the_specs_give():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "stubs.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_user_program_type_checks_and_a_wrong_call_is_found(tmp_path):
    api = pytest.importorskip("mypy.api")
    program = tmp_path / "user.py"
    program.write_text(textwrap.dedent("""
        import numpy as np
        import fastgd
        from fastgd.functional import adam_

        w = np.zeros(3, np.float32)
        m, v = np.zeros_like(w), np.zeros_like(w)
        opt = fastgd.optim.Adam([w], lr=1e-2, betas=(0.9, 0.99), maximize=False)
        opt.step([np.ones_like(w)])
        adam_(w, np.ones_like(w), m, v, step=1, lr=np.float32(0.1))
        fastgd.optim.SGD([w], 0.1, momentum=0.9, nesterov=True)
        f = fastgd.functions.himmelblau()
        fastgd.minimize(f, np.array([0.0, 0.0]), method="adam", lr=0.05)
        fastgd.optim.Adam([w], learning_rate=0.1)
        adam_(w, np.ones_like(w), m, v, lr=0.1, step=1, beta=0.9)
    """))
    out, err, status = api.run([str(program), "--no-incremental", "--cache-dir", "/dev/null",
                                "--ignore-missing-imports"])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 2, out + err
    assert '"learning_rate"' in errors[0] and "user.py:14" in errors[0]
    assert '"beta"' in errors[1] and "user.py:15" in errors[1]
