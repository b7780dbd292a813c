"""Bad input through the CLI: one clear line, a non-zero exit, nothing written to any study."""
import subprocess
import sys
import time

import pytest

from tests.conftest import write_image_folder

GOOD_SPACE = """
dataset: digits
fixed: {epochs: 2, model: lenet}
params:
  lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
"""


def cli(*args, cwd):
    """The entry point as users run it, a process of its own (the other tests here call ``main`` in-process)."""
    return subprocess.run([sys.executable, "-m", "autocls", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("space_text, args, message", [
    (GOOD_SPACE, ["search", "cifar11"], "unknown dataset 'cifar11'"),
    (GOOD_SPACE.replace("lr:", "learning_rate:"), ["search", "digits"], "params.learning_rate: unknown parameter"),
    (GOOD_SPACE.replace("low: 1.0e-3", "low: fast"), ["search", "digits"], "params.lr.low: expected a number"),
    (GOOD_SPACE.replace("params:", "params:\n  optimizer: {type: categorical, choices: []}"), ["search", "digits"],
     "params.optimizer.choices: must be a non-empty list"),
    (GOOD_SPACE.replace("low: 1.0e-3, high: 1.0e-1", "low: 1.0e-1, high: 1.0e-3"), ["search", "digits"],
     "low (0.1) must be below high (0.001)"),
    (GOOD_SPACE + "sampler: tpe\n", ["search", "digits"], "top level: unknown key(s) ['sampler']"),
    (GOOD_SPACE, ["search", "digits", "--storage", "nosuchdb://x/y"], "cannot open storage 'nosuchdb://x/y'"),
    (GOOD_SPACE, ["search", "digits", "--storage", "postgresql://u:p@127.0.0.1:9/none"], "cannot open storage"),
    (GOOD_SPACE, ["search", "digits", "--trials", "0"], "--trials must be >= 1"),
    (GOOD_SPACE, ["search", "digits", "--sampler", "cmaes", "--time-budget", "soon"], "--time-budget: cannot read 'soon'"),
    (GOOD_SPACE, ["build-ensemble", "--study", "nothing"], "no study 'nothing'"),
    (GOOD_SPACE, ["build-ensemble", "--study", "nothing", "--top", "0"], "--top must be >= 1, got 0"),
    (GOOD_SPACE, ["report", "--study", "nothing"], "no study 'nothing'"),
    # regression: IsADirectoryError's traceback after the report was drawn
    (GOOD_SPACE, ["report", "--study", "nothing", "--out", "."], "--out . is a folder; give a file name"),
    (GOOD_SPACE, ["predict", "no/such/ensemble", "x.png", "--csv", "."], "--csv . is a folder; give a file name"),
    (GOOD_SPACE, ["predict", "no/such/ensemble", "x.png"], "no ensemble or training run at 'no/such/ensemble'"),
    (GOOD_SPACE, ["predict", ".", "x.png"], "'.' is not an autocls ensemble"),
    (GOOD_SPACE, ["predict", "no/such/ensemble", "x.png", "--batch-size", "0"], "--batch-size must be >= 1"),
    (GOOD_SPACE, ["train", "digits", "--epochs", "none"], "epochs: a value is required"),
    (GOOD_SPACE, ["train", "digits", "--device", "foo"], "device: 'foo' is not one of"),
    # regression: `train --time-budget 0s` trained without a budget (a zero budget read as none)
    (GOOD_SPACE, ["train", "digits", "--time-budget", "0s"], "--time-budget must be > 0, got '0s'"),
    (GOOD_SPACE.replace("model: lenet", "model: lenet, lr: null").replace("  lr:", "  momentum:")
     .replace("low: 1.0e-3, high: 1.0e-1, log: true", "low: 0.8, high: 0.9"), ["search", "digits"],
     "lr: a value is required"),
    (GOOD_SPACE.replace("model: lenet", "model: lenet, milestones: [a]"), ["search", "digits"],
     "milestones: expected list"),
    (GOOD_SPACE.replace("model: lenet", "model: lenet, device: cpu"), ["search", "digits"],
     "fixed.device: is a runtime setting"),
    ("params: " + "[" * 3000 + "]" * 3000, ["search", "digits"], "nested too deeply"),
    (GOOD_SPACE, ["search", "digits", "--seed", "-1"], "--seed must be in"),
    (GOOD_SPACE, ["search", "cifar[/x]"], "dataset folder 'cifar[/x]' does not exist"),
    # regression: "dataset folder '...' does not exist" of a downloaded archive, or any file, that does
    (GOOD_SPACE, ["search", "flowers.zip"], "'flowers.zip' is a file, not a dataset folder; unpack it first (unzip "
     "flowers.zip) and give the folder it makes (ImageFolder layout: <folder>/<class>/<image>)"),
    (GOOD_SPACE, ["train", "space.yaml"], "'space.yaml' is a file, not a dataset folder (ImageFolder layout"),
    (GOOD_SPACE, ["search", "digits", "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (GOOD_SPACE, ["search", "digits", "--max-concurrent", "-1"], "--max-concurrent must be >= 1"),
    (GOOD_SPACE, ["search", "digits", "--gpus-per-trial", "3"], "--gpus-per-trial 3: this machine has"),
    (GOOD_SPACE, ["search", "digits", "--storage", "sqlite:////etc/hostname/x.db"], "cannot open storage"),
    (GOOD_SPACE, ["search", "digits", "--study", "s" * 300], "study name"),
    (GOOD_SPACE, ["search", "digits", "--study", "../../x"], "study name"),
    # regression: ray.init tried a dead address for minutes, logging each try, after writing the study
    (GOOD_SPACE, ["search", "digits", "--address", "127.0.0.1:9"], "--address 127.0.0.1:9: no Ray cluster answers"),
])
def test_bad_input_one_line_nonzero_nothing_written(tmp_path, autocls_cli, space_text, args, message):
    (tmp_path / "space.yaml").write_text(space_text)
    (tmp_path / "flowers.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip, as downloaded
    if args[0] == "search":
        args = [*args, "--space", "space.yaml"]
    proc = autocls_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) <= 2
    assert not (tmp_path / "studies").exists()


def test_an_address_where_something_other_than_ray_answers_is_one_line_at_once(tmp_path, autocls_cli):
    """Regression: ray.init tried an HTTP server's port (as a dashboard's, 8265, would be) for 14 minutes."""
    import threading
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    server = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.time()
        proc = autocls_cli("search", "digits", "--address", f"127.0.0.1:{server.server_port}", cwd=tmp_path)
    finally:
        server.shutdown()
    assert proc.returncode == 2 and "something else does (not gRPC)" in proc.stderr, proc.stderr[-2000:]
    assert time.time() - started < 60 and not (tmp_path / "studies").exists()


def test_auto_address_left_by_a_killed_cluster_is_one_line_at_once(tmp_path, autocls_cli, monkeypatch):
    """Regression: a `ray start` cluster killed without `ray stop` (as the cluster test's clean-up did) left its
    address file behind, and `--address auto` tried that address for 5.5 minutes before its error."""
    import socket

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    address_file = tmp_path / "raytmp" / "ray" / "ray_current_cluster"
    address_file.parent.mkdir(parents=True)
    address_file.write_text(f"127.0.0.1:{port}")
    started = time.time()
    proc = autocls_cli("search", "digits", "--address", "auto", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"no Ray cluster answers at 127.0.0.1:{port}, the address `ray start` left in {address_file}" in proc.stderr
    assert "ended without `ray stop`" in proc.stderr
    assert time.time() - started < 60 and not (tmp_path / "studies").exists()


def test_one_class_folder_and_non_images(tmp_path, autocls_cli):
    write_image_folder(tmp_path / "one", classes=("cats",))
    proc = autocls_cli("search", str(tmp_path / "one"), "--space", "digits", cwd=tmp_path)
    assert proc.returncode == 2 and "only one class folder" in proc.stderr
    assert not (tmp_path / "studies").exists()
    small = write_image_folder(tmp_path / "small", classes=("a", "b"), per_class=5)
    for extra in ("2.png", "3.png", "4.png"):
        (small / "b" / extra).unlink()  # two images of b: no stratified train / val / test split
    proc = autocls_cli("search", str(small), "--space", "digits", cwd=tmp_path)
    assert proc.returncode == 2 and "['b'] have fewer than 3 images" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "studies").exists()
    root = write_image_folder(tmp_path / "two", classes=("a", "b"), per_class=4)
    (root / "a" / "fake.jpg").write_text("not an image at all")
    proc = autocls_cli("train", str(root), "--model", "lenet", "--epochs", "1", "--batch-size", "4",
                       "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"skipped 1 file that is not a readable image: {root / 'a' / 'fake.jpg'}" in proc.stderr, proc.stderr


def test_a_run_whose_weights_no_longer_fit_its_model_is_one_line(tmp_path, autocls_cli):
    # regression: a one-channel LeNet saved before its first layer changed loaded with a traceback of state-dict keys
    from autocls.artifacts import weights_bytes
    from autocls.models import create_model

    trained = autocls_cli("train", "digits", "--model", "lenet", "--epochs", "1", "--out", "run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    (tmp_path / "run" / "best.safetensors").write_bytes(weights_bytes(create_model("lenet", 10, in_chans=3)))
    write_image_folder(tmp_path / "images", classes=("a",), per_class=2)
    proc = autocls_cli("predict", "run", "images", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "best.safetensors: its weights do not fit the model as this version of autocls builds it" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_vgg_run_saved_before_its_logits_were_scaled_is_refused_in_one_line(tmp_path, autocls_cli):
    """Regression: VGG's logits gained a factor of 0.125 (2c3c181), which has no weights: a run or ensemble saved
    before loaded without a word and voted with probabilities its training never made.  Weights files now carry
    their model's weights revision; files without one (older autocls) are revision 1, which still fits every model
    whose code has not changed since."""
    from safetensors.torch import load_file, save

    for model in ("vgg11_bn", "lenet"):
        trained = autocls_cli("train", "digits", "--model", model, "--epochs", "1", "--out", model, cwd=tmp_path)
        assert trained.returncode == 0, trained.stderr[-2000:]
        weights = tmp_path / model / "best.safetensors"
        weights.write_bytes(save(load_file(weights), metadata={"epoch": "1"}))  # as an older autocls wrote it
    write_image_folder(tmp_path / "images", classes=("a",), per_class=2)
    proc = autocls_cli("predict", "vgg11_bn", "images", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert ("best.safetensors: saved by another version of autocls, whose VGG computed other outputs from the same "
            "weights (weights revision 1, this version's 2); train it again") in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert autocls_cli("predict", "lenet", "images", cwd=tmp_path).returncode == 0


def test_no_secret_and_no_huge_line(tmp_path):
    proc = cli("search", "digits", "--space", "digits", "--storage", "postgresql://u:secretpw@127.0.0.1:9/none",
               cwd=tmp_path)
    assert proc.returncode == 2 and "cannot open storage" in proc.stderr and "secretpw" not in proc.stderr
    # a billion laughs: nine levels of nine aliases, 9**9 strings once expanded
    levels = ["&a [" + ", ".join(["x"] * 9) + "]"] + [
        f"&{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    (tmp_path / "bomb.yaml").write_text("params:\n  lr: {type: float, low: 0.1, high: 0.2}\n"
                                        f"fixed:\n  milestones: [{', '.join(levels)}]\n")
    proc = cli("search", "digits", "--space", "bomb.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "milestones" in proc.stderr and len(proc.stderr) < 1000, proc.stderr[:2000]


def test_a_search_whose_every_trial_failed_exits_nonzero(tmp_path, autocls_cli):
    (tmp_path / "space.yaml").write_text(GOOD_SPACE.replace("model: lenet", "model: lenet, pretrained: true"))
    proc = autocls_cli("search", "digits", "--space", "space.yaml", "--trials", "2", "--no-ensemble", cwd=tmp_path)
    assert proc.returncode == 1 and "every trial failed" in proc.stderr and "no pretrained weights" in proc.stderr


@pytest.mark.parametrize("args", [["search", "cifar11"], ["search", "digits", "--space", "digits", "--trials", "0"],
                                  ["search", "digits", "--space", "digits", "--time-budget", "soon"]])
def test_bad_search_input_fails_before_ray_is_imported(tmp_path, args):
    # Ray's imports cost seconds; a typo should not wait for them (it waited ~6 s for `search cifar11`)
    probe = "import sys; from autocls.cli import main; code = main(sys.argv[1:]); print(code, 'ray' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("args, message", [(["--trials", "0"], "--trials must be >= 1"),
                                           (["--time-budget", "soon"], "--time-budget: cannot read 'soon'")])
def test_a_bad_flag_without_a_space_is_the_only_line(tmp_path, autocls_cli, args, message):
    """Regression: with no --space the preset's line came before the error, two lines for one typo."""
    folder = write_image_folder(tmp_path / "photos", classes=("a", "b"), per_class=2)
    proc = autocls_cli("search", str(folder), *args, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {message}"), proc.stderr
    assert not (tmp_path / "studies").exists()


def test_the_python_api_takes_the_preset_when_no_space_is_given(tmp_path, capsys):
    """Regression: ``run_search(folder)`` searched the digits space (8x8 LeNets) on any folder of photos."""
    from autocls.errors import UserError
    from autocls.search import run_search

    folder = write_image_folder(tmp_path / "photos", classes=("a", "b"), per_class=2)
    with pytest.raises(UserError, match="unknown sampler"):  # stops after the preset is chosen, before any write
        run_search(str(folder), n_trials=1, sampler="nosuch", studies_dir=tmp_path / "studies")
    printed = capsys.readouterr().err
    assert "preset: space 'cpu-small'" in printed
    # Regression: without a budget, the preset's 24-epoch trials ran half an hour each on a CPU, with no word
    assert "note: without --time-budget nothing sizes the trials: 1 trial of up to 24 epochs" in printed
    with pytest.raises(UserError, match="unknown sampler"):
        run_search(str(folder), n_trials=None, time_budget_s=60, sampler="nosuch", studies_dir=tmp_path / "studies")
    assert "without --time-budget" not in capsys.readouterr().err
    assert not (tmp_path / "studies").exists()
