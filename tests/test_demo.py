"""``fastgd demo``: the figures are written as valid PNG files, atomically, and the command's
errors are one line."""
import os
import sys

import pytest

from fastgd import cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 150_000


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
    assert {"learning_rate", "ill_conditioning", "plateau", "local_minima",
            "batch_sizes"} <= set(names)
    assert sorted(os.listdir(out)) == sorted(n + ".png" for n in names)  # no temporary files
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
    """The hook for the fastgd.nn figures (5 and 7): a module listed in FIGURE_MODULES is
    imported before the figures run and registers its own, which take their place in the
    order."""
    pytest.importorskip("matplotlib")
    from fastgd import demo

    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "fastgd_test_demo_plugin.py").write_text(
        "from fastgd import demo\n"
        "@demo.figure(5, 'fake_five', 'a registered figure')\n"
        "def fake_five():\n"
        "    fig, (ax, _) = demo._new_figure()\n"
        "    ax.plot([0, 1], [1, 0], label='line')\n"
        "    ax.set_title('five')\n"
        "    ax.legend()\n"
        "    return fig\n")
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.delitem(sys.modules, "fastgd_test_demo_plugin", raising=False)
    monkeypatch.setattr(demo, "FIGURE_MODULES", ["fastgd_test_demo_plugin",
                                                 "fastgd._no_such_module"])
    monkeypatch.setattr(demo, "FIGURES", list(demo.FIGURES))
    out = tmp_path / "out"
    assert cli.main(["demo", "--out", str(out), "--only", "fake_five"]) == 0
    assert capsys.readouterr().out.startswith(str(out / "fake_five.png"))
    _check_png(str(out / "fake_five.png"))
    names = [f.name for f in demo.FIGURES]               # in its place, between 4 and 6
    assert names.index("local_minima") < names.index("fake_five") < names.index("batch_sizes")
    with pytest.raises(ValueError, match="exists already"):
        demo.figure(5, "another", "clash")(lambda: None)


def test_bad_dpi(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main(["demo", "--out", str(tmp_path), "--dpi", "5"]) == 2
    assert "--dpi" in capsys.readouterr().err
