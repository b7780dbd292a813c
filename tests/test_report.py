"""The HTML report, rendered in headless Chromium."""
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from autocls.ensemble import build_ensemble
from autocls.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_has_every_figure_and_attaches_them(searched, tmp_path):
    study, root = searched
    ens = build_ensemble(study, top=3, name="for-report")
    out = build_report(study, ensemble_dir=ens.folder, out=tmp_path / "report.html")
    html = out.read_text()
    assert html.count('class="plotly-graph-div"') >= 7
    for title in ("Leaderboard", "Learning curves", "importances", "Per-class test accuracy", "one-vs-rest",
                  "gain of the ensemble", "Confusion matrix"):
        assert title in html, title
    assert "cdn.plot.ly" not in html.split("<body>")[0]  # plotly.js inlined: self-contained
    from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert len(get_plotly_graph_objects(attrs)) >= 6


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
