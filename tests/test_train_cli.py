"""The `fastgd train` command: the main job, its options and its one-line errors."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastgd
from fastgd.cli import main


def run(capsys, *argv):
    code = main(["train", "--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def accuracy(out):
    line = [ln for ln in out.splitlines() if ln.startswith("test accuracy: ")]
    assert len(line) == 1, out
    return float(line[0].split(": ")[1])


def test_default_run_trains_the_bundled_digits(capsys):
    code, out, err = run(capsys)
    assert code == 0, err
    assert "1797 samples, 64 features, 10 classes" in out
    assert "MLP 64-128-10 relu" in out
    assert out.strip().splitlines()[-1].startswith("test accuracy: 0.9")
    assert accuracy(out) >= 0.96


def test_same_seed_same_result_and_options(capsys):
    args = ("--hidden", "32,16", "--activation", "tanh", "--optimizer", "momentum",
            "--lr", "0.01", "--epochs", "3", "--batch-size", "64", "--seed", "3")
    first = accuracy(run(capsys, *args)[1])
    code, out, _ = run(capsys, *args)
    assert code == 0 and "MLP 64-32-16-10 tanh" in out and "momentum lr=0.01" in out
    assert accuracy(out) == first


def test_progress_lines_without_a_terminal(capsys):
    assert main(["train", "--epochs", "4"]) == 0
    out = capsys.readouterr().out
    assert "epoch 4/4: loss" in out


def test_csv_with_header_and_named_label_column(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    path = tmp_path / "d.csv"
    with open(path, "w") as fh:
        fh.write("label,a,b,c\n")
        for xi, yi in zip(X, y):
            fh.write(f"{yi},{xi[0]},{xi[1]},{xi[2]}\n")
    code, out, err = run(capsys, "--data", str(path), "--label-column", "label",
                         "--epochs", "40", "--lr", "0.01")
    assert code == 0, err
    assert "120 samples, 3 features, 2 classes" in out
    assert accuracy(out) >= 0.85


def test_npz_data_save_and_load_round_trip(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((90, 4)) * 10 + 5
    y = (X[:, 2] > 5).astype(int) + 1  # labels 1 and 2
    np.savez(tmp_path / "d.npz", X=X, y=y)
    model_path = tmp_path / "m.npz"
    code, out, err = run(capsys, "--data", str(tmp_path / "d.npz"), "--save", str(model_path),
                         "--epochs", "30", "--lr", "0.01")
    assert code == 0, err
    model, opt = fastgd.load(model_path, optimizer=True)
    assert isinstance(opt, fastgd.optim.Adam)
    # the saved model takes raw features: standardisation is folded into its first layer
    pred = model.predict(X.astype(np.float32)).argmax(axis=1) + 1
    assert np.mean(pred == y) >= 0.85


def test_lbfgs_trains_full_batch_and_saves_its_optimizer(tmp_path, capsys):
    model_path = tmp_path / "m.npz"
    code, out, err = run(capsys, "--optimizer", "lbfgs", "--epochs", "5", "--hidden", "32",
                         "--save", str(model_path))
    assert code == 0, err
    assert "lbfgs lr=1.0 (strong-Wolfe line search); 5 epochs, batch full" in out
    assert accuracy(out) >= 0.9
    model, opt = fastgd.load(model_path, optimizer=True)
    assert isinstance(opt, fastgd.optim.LBFGS)
    assert opt.param_groups[0]["line_search_fn"] == "strong_wolfe" and opt.state[0]["n_iter"] > 0
    # --batch-size 0 is full batch too; --lr is taken
    code, out, err = run(capsys, "--optimizer", "lbfgs", "--epochs", "2", "--hidden", "8",
                         "--batch-size", "0", "--lr", "0.5")
    assert code == 0, err
    assert "lbfgs lr=0.5 (strong-Wolfe line search); 2 epochs, batch full" in out


def test_lbfgs_refuses_a_batch_size(capsys):
    code, _, err = run(capsys, "--optimizer", "lbfgs", "--batch-size", "32")
    assert code == 2 and "Traceback" not in err
    assert "--optimizer lbfgs trains full batch: leave out --batch-size (or pass 0), got " \
        "--batch-size 32" in err


def test_help_names_lbfgs(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "lbfgs" in out and "strong-Wolfe" in out


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "loss.png"
    code, out, err = run(capsys, "--epochs", "2", "--plot", str(png))
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".fastgd-")]


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("a,b,label\n1,zz,x\n3,4,y\n5,6,x\n7,8,y\n", "non-numeric feature value 'zz'"),
    ("1,2,0\n3,4\n5,6,1\n7,8,0\n", "row 2 has 2 columns, expected 3"),
    ("1,2,0\n3,4,0\n5,6,0\n7,8,0\n", "single class"),
    ("1,2,0.5\n3,4,1\n5,6,0\n7,8,1\n", "fractional"),
    ("", "is empty"),
])
def test_bad_csv_gives_one_line_error(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, "--data", str(path))
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (("--label-column", "nope"), "--label-column 'nope'"),
    (("--label-column", "9"), "out of range"),
    (("--hidden", "12,x"), "--hidden must be comma-separated integers"),
    (("--epochs", "0"), "--epochs is out of range"),
    (("--lr", "-1"), "--lr is out of range"),
    (("--test-size", "1.5"), "--test-size is out of range"),
])
def test_bad_options(tmp_path, capsys, argv, message):
    path = tmp_path / "ok.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    code, _, err = run(capsys, "--data", str(path), *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_npz_without_X_and_y(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", A=np.ones((5, 2)))
    code, _, err = run(capsys, "--data", str(tmp_path / "d.npz"))
    assert code == 2 and "must hold arrays named X and y" in err


def test_divergence_is_a_one_line_error(capsys):
    code, _, err = run(capsys, "--optimizer", "sgd", "--lr", "1e30", "--epochs", "2")
    assert code == 2
    assert "diverged" in err and "smaller learning rate" in err


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "fastgd", "train", "--quiet", "--epochs", "1"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "test accuracy: " in res.stdout


def test_console_script_is_installed():
    exe = shutil.which("fastgd") or os.path.join(os.path.dirname(sys.executable), "fastgd")
    if not os.path.exists(exe):
        pytest.skip("the fastgd console script is not on PATH in this environment")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "train" in res.stdout
