"""The HTML report, rendered in headless Chromium."""
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from autocls.ensemble import build_ensemble
from autocls.report import build_report
from tests.conftest import dashboard_study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_has_every_figure_and_attaches_them(searched, tmp_path):
    study, root = searched
    ens = build_ensemble(study, top=3, name="for-report")
    out = build_report(study, ensemble_dir=ens.folder, out=tmp_path / "report.html")
    html = out.read_text()
    assert html.count('class="plotly-graph-div"') >= 8
    for title in ("Leaderboard", "Learning curves", "importances", "Per-class test accuracy", "one-vs-rest",
                  "gain of the ensemble", "Confusion matrix", "Confidence against accuracy on test"):
        assert title in html, title
    # the ensemble's calibration as `autocls predict` gives its probabilities, and the best trial's at its temperature
    assert f"ensemble (for-report) (ECE {ens.test['ece']:.3f})" in html
    assert re.search(r"best trial #\d+, temperature \d\.\d\d \(ECE 0\.\d{3}\)", html)
    assert "cdn.plot.ly" not in html.split("<body>")[0]  # plotly.js inlined: self-contained
    # attached to the study: optuna-dashboard serves them with it
    attached = dashboard_study(f"sqlite:///{root / 'studies' / 'digits.db'}", "digits")["plotly_graph_objects"]
    assert sum(g["id"].startswith("autocls-") for g in attached) >= 7


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(searched, tmp_path):
    study, root = searched
    out = build_report(study, out=tmp_path / "report.html", attach=False)
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                    "--virtual-time-budget=15000", f"--screenshot={shot}", out.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists()
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # plots draw colored traces; a blank page (or unrendered divs) is white and black text only
    colored = (np.abs(pixels[..., 0] - pixels[..., 1]) > 40) | (np.abs(pixels[..., 1] - pixels[..., 2]) > 40)
    assert colored.mean() > 0.01
    # plot areas have plotly's light blue-grey background
    plot_bg = (np.abs(pixels - np.array([229, 236, 246])).sum(-1) < 12).mean()
    assert plot_bg > 0.05


def test_user_text_is_escaped_in_the_page(searched, tmp_path):
    """Regression: a study name with an <img onerror=...> tag ran script in the report."""
    import optuna

    study, root = searched
    evil = "<img src=x onerror=alert(1)>"
    storage = f"sqlite:///{tmp_path / 'copy.db'}"
    optuna.copy_study(from_study_name="digits", from_storage=f"sqlite:///{root / 'studies' / 'digits.db'}",
                      to_storage=storage, to_study_name=evil)
    copy = optuna.load_study(study_name=evil, storage=storage)
    html = build_report(copy, out=tmp_path / "report.html", attach=False).read_text()
    assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_multi_objective_best_trial_is_the_front_member_with_the_best_val_acc():
    import optuna

    from autocls.report.html import best_trial

    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.9, 500], [0.95, 900], [0.8, 100], [0.7, 1000]):
        study.add_trial(optuna.trial.create_trial(values=values))
    assert best_trial(study).values == [0.95, 900]


def test_the_report_reads_the_studys_data_dir(tmp_path, monkeypatch):
    """Regression: the report reloaded the dataset from ./data, ignoring the study's --data-dir."""
    import textwrap

    from autocls.search import run_search
    from tests.conftest import write_cifar10

    write_cifar10(tmp_path / "elsewhere", per_batch=20, test=30)
    (tmp_path / "space.yaml").write_text(textwrap.dedent("""
        dataset: cifar10
        fixed: {epochs: 1, batch_size: 32, model: lenet, optimizer: adam}
        params:
          lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
    """))
    study = run_search("cifar10", space=tmp_path / "space.yaml", n_trials=1, study_name="c", data_dir=str(tmp_path / "elsewhere"),
                       studies_dir=tmp_path / "studies", show_progress=False, ensemble_top=None)
    monkeypatch.chdir(tmp_path / "studies")  # no ./data here
    html = build_report(study, out=tmp_path / "report.html", attach=False).read_text()
    assert "Confusion matrix" in html


def test_two_classes_report_and_print_no_top5(tmp_path, capsys):
    """Regression: with five classes or fewer top-5 is 100% whatever the model, and the search printed it so."""
    import textwrap

    from autocls.search import run_search
    from tests.conftest import write_image_folder

    folder = write_image_folder(tmp_path / "pets", classes=("cats", "dogs"), per_class=12)
    (tmp_path / "space.yaml").write_text(textwrap.dedent("""
        fixed: {epochs: 1, batch_size: 8, model: lenet, optimizer: adam}
        params:
          lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
    """))
    study = run_search(str(folder), space=tmp_path / "space.yaml", n_trials=1, studies_dir=tmp_path / "studies",
                       ensemble_top=1)
    printed = capsys.readouterr().out
    ensemble_row = next(line for line in printed.splitlines() if "ensemble" in line and "%" in line)
    assert ensemble_row.count("%") == 1 and "n/a" in ensemble_row, printed  # top-1 only
    assert re.search(r"^vote shares #0: 100%$", printed, re.M), printed
    html = build_report(study, out=tmp_path / "report.html", attach=False).read_text()
    assert "test top-1" in html and "top-5" not in html
