"""``fastgd demo``: the figures are written as valid PNG files, atomically, and the command's
errors are one line; the numbers behind figures 5 and 7 show what the figures claim."""
import importlib
import math
import os
import sys

import numpy as np
import pytest

from fastgd import cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 150_000
ALL_FIGURES = ["learning_rate", "ill_conditioning", "plateau", "local_minima",
               "vanishing_gradients", "batch_sizes", "digits_optimizers"]


def _check_png(path):
    image = pytest.importorskip("matplotlib.image")
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_SIGNATURE, path
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] >= 300 and pixels.shape[1] >= 600, pixels.shape
    assert pixels.std() > 0.05, f"{path} looks blank"
    assert os.path.getsize(path) < MAX_BYTES, (path, os.path.getsize(path))


def test_demo_writes_every_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from fastgd import demo
    out = tmp_path / "figs"
    assert cli.main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    names = [f.name for f in demo.FIGURES]
    assert [(f.number, f.name) for f in demo.FIGURES] == list(enumerate(ALL_FIGURES, start=1))
    assert sorted(os.listdir(out)) == sorted(n + ".png" for n in names)  # no temporary files
    assert len(printed) == len(names) == 7
    for name, line in zip(names, printed):
        path = str(out / (name + ".png"))
        assert line.startswith(path)
        _check_png(path)


def test_only_selects_figures_and_unknown_names_are_an_error(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main(["demo", "--out", str(tmp_path), "--only", "plateau"]) == 0
    assert os.listdir(tmp_path) == ["plateau.png"]
    _check_png(str(tmp_path / "plateau.png"))
    capsys.readouterr()
    assert cli.main(["demo", "--out", str(tmp_path), "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown figure 'nope'" in err and "plateau" in err and "Traceback" not in err


def test_out_must_be_a_directory(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert cli.main(["demo", "--out", str(afile), "--only", "plateau"]) == 2
    assert "fastgd demo: error:" in capsys.readouterr().err


def test_missing_matplotlib_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib -> ImportError
    assert cli.main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "fastgd demo needs matplotlib: pip install 'fastgd[plot]'" in err
    assert os.listdir(tmp_path) == []


def test_more_figures_register_through_a_figure_module(tmp_path, monkeypatch, capsys):
    """How figures 5 and 7 join the demo: a module that registers a figure with
    ``@demo.figure`` when imported adds it to `FIGURES` in the order of its number."""
    pytest.importorskip("matplotlib")
    from fastgd import demo

    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "fastgd_test_demo_plugin.py").write_text(
        "from fastgd import demo\n"
        "@demo.figure(5, 'fake_five', 'a registered figure')\n"
        "def fake_five():\n"
        "    fig, (ax, _) = demo.new_figure()\n"
        "    ax.plot([0, 1], [1, 0], label='line')\n"
        "    ax.set_title('five')\n"
        "    ax.legend()\n"
        "    return fig\n")
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.delitem(sys.modules, "fastgd_test_demo_plugin", raising=False)
    saved = list(demo.FIGURES)
    try:
        demo.FIGURES[:] = [f for f in saved if f.number != 5]   # without the real figure 5
        importlib.import_module("fastgd_test_demo_plugin")
        out = tmp_path / "out"
        assert cli.main(["demo", "--out", str(out), "--only", "fake_five"]) == 0
        assert capsys.readouterr().out.startswith(str(out / "fake_five.png"))
        _check_png(str(out / "fake_five.png"))
        names = [f.name for f in demo.FIGURES]           # in its place, between 4 and 6
        assert names.index("local_minima") < names.index("fake_five") < names.index("batch_sizes")
        with pytest.raises(ValueError, match="exists already"):
            demo.figure(5, "another", "clash")(lambda: None)
    finally:
        demo.FIGURES[:] = saved


def test_bad_dpi(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main(["demo", "--out", str(tmp_path), "--dpi", "5"]) == 2
    assert "--dpi" in capsys.readouterr().err


# ---------------------------------------------------------------------------- figure 5
def test_sigmoid_gradients_vanish_towards_the_input_and_relu_ones_do_not():
    from fastgd.demo import networks

    for seed in range(3):
        sig = networks.layer_gradient_norms("sigmoid", seed=seed)
        relu = networks.layer_gradient_norms("relu", seed=seed)
        assert sig.shape == relu.shape == (networks.DEPTH,)
        assert np.all(np.isfinite(sig)) and np.all(sig > 0) and np.all(relu > 0)
        # the first layer's gradient is orders of magnitude below the last layer's, and it
        # shrinks at every layer on the way back (by about sigma' <= 1/4 each)
        assert sig[0] < 1e-4 * sig[-1], sig
        assert np.all(np.diff(np.log(sig)) > np.log(2)), sig
        # ReLU with He initialisation keeps them within a factor of 10
        assert 0.1 < relu[0] / relu[-1] < 10, relu
        assert relu.max() / relu.min() < 10, relu


def test_layer_gradient_norms_are_the_norms_of_model_gradients():
    from fastgd.demo import networks
    from fastgd.nn import CrossEntropyLoss

    norms = networks.layer_gradient_norms("relu", depth=3, width=8, seed=1, batch=64)
    X, y = networks.digits(np.float64)
    rows = np.random.default_rng(1).permutation(len(X))[:64]
    model = networks.deep_mlp("relu", depth=3, width=8, seed=1)
    assert [p.shape for p in model.parameters()] == [(64, 8), (8,), (8, 8), (8,), (8, 10), (10,)]
    loss = CrossEntropyLoss()
    loss.forward(model.forward(X[rows]), y[rows])
    model.backward(loss.backward())
    dW = model.gradients()[0::2]
    np.testing.assert_allclose(norms, [np.sqrt((g ** 2).sum()) for g in dW], rtol=1e-12)


def test_the_deep_sigmoid_net_stalls_at_chance_and_the_relu_net_learns():
    from fastgd.demo import networks

    sig = networks.train_deep("sigmoid", epochs=3)
    relu = networks.train_deep("relu", epochs=3)
    assert np.all(np.abs(sig - math.log(10)) < 0.05), sig         # uniform guessing: ln 10
    assert relu[-1] < 1.5 and np.all(np.diff(relu) < 0), relu


# ---------------------------------------------------------------------------- figure 7
def test_digits_optimizer_runs_train_every_optimizer_from_the_same_start():
    from fastgd.demo import networks

    specs = networks.DIGITS_OPTIMIZERS
    assert [s[0].split(" ")[0] for s in specs] == ["SGD", "SGD", "Adagrad", "RMSprop", "Adam",
                                                   "AdamW"]
    assert specs[1][2]["momentum"] == 0.9
    runs = networks.digits_optimizer_runs(epochs=3)
    assert [r["label"] for r in runs] == [s[0] for s in specs]
    assert [r["lr"] for r in runs] == [s[2]["lr"] for s in specs]
    for r in runs:
        assert r["n_test"] == 450 and r["loss"].shape == r["test_accuracy"].shape == (3,)
        assert np.all(np.diff(r["loss"]) < 0) and r["loss"][-1] < 0.4, r
        assert r["test_accuracy"].max() > 0.9, r
    # same initialisation and batch order: a run repeats bit for bit, and Adam and AdamW
    # (weight decay 0.01 x lr 0.01 per step) stay close
    again = networks.digits_optimizer_runs(epochs=3, optimizers=[specs[4]])[0]
    np.testing.assert_array_equal(again["loss"], runs[4]["loss"])
    np.testing.assert_allclose(runs[5]["loss"], runs[4]["loss"], rtol=0.02)
