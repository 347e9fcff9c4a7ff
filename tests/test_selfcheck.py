"""``fastgd check`` / fastgd.selfcheck: every kernel passes here, and a twin that computes
something else is reported and fails the command."""
import numpy as np

import fastgd
from fastgd import cli, optim, selfcheck


def test_every_kernel_agrees_with_its_twin():
    results = selfcheck.run(log=None)
    names = {r.name for r in results}
    assert {"Linear(19, 11)", "softmax", "cross_entropy", "mse", "bce_with_logits"} <= names
    for cls in optim.ALGORITHMS.values():   # every optimizer, with its flags on
        assert any(n.startswith(cls.__name__ + "(") for n in names)
    assert "Adam(amsgrad=True)" in names and "RMSprop(momentum=0.9, centered=True)" in names
    assert {r.dtype for r in results} == {"float32", "float64"}
    bad = [r for r in results if not r.ok]
    assert not bad, bad


def test_a_wrong_twin_is_reported_and_fails_the_command(monkeypatch, capsys):
    right = fastgd.reference.nn.sigmoid
    monkeypatch.setattr(fastgd.reference.nn, "sigmoid", lambda z: right(z) + z.dtype.type(1e-3))
    assert cli.main(["check"]) == 1
    out = capsys.readouterr().out.splitlines()
    failed = [line for line in out if line.startswith("FAIL")]
    # the sigmoid and the loss built on it (BCE with logits), in both dtypes
    assert sorted(line.split()[2] for line in failed) == ["bce_with_logits"] * 2 + ["sigmoid"] * 2
    total = len(selfcheck.cases())
    assert f"{total - 4} of {total} kernels agree" in out[-1] and "please report" in out[-1]
    assert cli.main(["check", "--failures-only"]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_the_command_passes_here(capsys):
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(line.startswith("ok") for line in out[:-1])
    assert out[-1] == f"{len(out) - 1} of {len(out) - 1} kernels agree with their numpy twin"


def test_worst_is_relative_to_the_tolerance():
    a = np.array([1.0, 2.0], np.float32)
    assert selfcheck.relative_error(a, a) == 0
    b = a + np.float32(2e-5) * a
    assert 1 < selfcheck.relative_error(b, a) < 4
