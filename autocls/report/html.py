"""``build_report``: one self-contained plotly HTML page about a study and its ensemble."""
from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
import optuna
import plotly.graph_objects as go
import plotly.io as pio
from optuna.trial import TrialState

from autocls.artifacts import trial_artifacts
from autocls.ensemble.build import MANIFEST_FILE, ranking_metric, saved_ensembles
from autocls.ensemble.voting import apply_temperature
from autocls.errors import UserError
from autocls.files import atomic_write_text
from autocls.metrics import RANKING_METRICS, expected_calibration_error, per_class_accuracy, per_class_auc, summary


def learning_curves(study: optuna.Study) -> go.Figure:
    """Val top-1 (or what the study ranks by) per epoch of every trial; pruned trials dashed and ending in an x
    where ASHA cut them."""
    fig = go.Figure()
    style = {TrialState.COMPLETE: dict(dash="solid"), TrialState.PRUNED: dict(dash="dot")}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        curve = t.intermediate_values or {int(k): v for k, v in t.user_attrs.get("curve", {}).items()}
        if not curve:
            continue
        steps = sorted(curve)
        pruned = t.state == TrialState.PRUNED
        fig.add_trace(go.Scatter(
            x=steps, y=[curve[s] for s in steps], mode="lines+markers", name=f"#{t.number} {t.state.name.lower()}",
            line=style[t.state], opacity=0.5 if pruned else 0.9,
            marker=dict(symbol=["circle"] * (len(steps) - 1) + ["x" if pruned else "circle"], size=[4] * (len(steps) - 1) + [10 if pruned else 4]),
        ))
    fig.update_layout(title="Learning curves (dotted: pruned by ASHA, x marks the cut)", xaxis_title="epoch",
                      yaxis_title=f"val {RANKING_METRICS[ranking_metric(study)].label}", height=480)
    return fig


def leaderboard_table(study: optuna.Study) -> go.Figure:
    from autocls.search.runner import format_cell, leaderboard

    board = leaderboard(study).head(30)
    cells = [[format_cell(v) for v in board[c]] for c in board.columns]
    fig = go.Figure(go.Table(header=dict(values=list(board.columns)), cells=dict(values=cells)))
    fig.update_layout(title="Leaderboard (best first)", height=120 + 28 * len(board))
    return fig


def param_importances(study: optuna.Study) -> go.Figure | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 3:
        return None
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator, target=lambda t: t.values[0])
    except (RuntimeError, ValueError):  # e.g. no parameter varies across complete trials
        return None
    names = list(importances)[::-1]
    fig = go.Figure(go.Bar(x=[importances[n] for n in names], y=names, orientation="h"))
    fig.update_layout(title="Hyperparameter importances (fANOVA on complete trials)", xaxis_title="importance",
                      height=160 + 24 * len(names))
    return fig


def per_class_figures(classes: list[str], labels: np.ndarray, best_probs: np.ndarray, best_name: str,
                      ensemble_probs: np.ndarray | None, member_probs: np.ndarray | None = None) -> list[go.Figure]:
    """Per-class accuracy and AUC (worst first), the ensemble's gain over its best member, a confusion matrix."""
    n = len(classes)
    acc_best, auc_best = per_class_accuracy(best_probs, labels, n), per_class_auc(best_probs, labels, n)
    reference = ensemble_probs if ensemble_probs is not None else best_probs
    order = np.argsort(np.nan_to_num(per_class_accuracy(reference, labels, n), nan=2.0))  # worst first
    names = [classes[i] for i in order]
    acc_fig, auc_fig = go.Figure(), go.Figure()
    acc_fig.add_trace(go.Bar(x=names, y=acc_best[order], name=best_name))
    auc_fig.add_trace(go.Bar(x=names, y=auc_best[order], name=best_name))
    figures = [acc_fig, auc_fig]
    if ensemble_probs is not None:
        acc_ens, auc_ens = per_class_accuracy(ensemble_probs, labels, n), per_class_auc(ensemble_probs, labels, n)
        acc_fig.add_trace(go.Bar(x=names, y=acc_ens[order], name="ensemble"))
        auc_fig.add_trace(go.Bar(x=names, y=auc_ens[order], name="ensemble"))
        member_probs = best_probs if member_probs is None else member_probs
        gain = acc_ens - per_class_accuracy(member_probs, labels, n)
        gain_order = np.argsort(np.nan_to_num(gain))
        gain_fig = go.Figure(go.Bar(x=[classes[i] for i in gain_order], y=gain[gain_order],
                                    marker_color=["#c0392b" if g < 0 else "#27ae60" for g in gain[gain_order]]))
        gain_fig.update_layout(title="Per-class test accuracy gain of the ensemble over its best member",
                               yaxis_title="accuracy gain", height=420)
        figures.append(gain_fig)
    acc_fig.update_layout(title="Per-class test accuracy (worst classes first)", barmode="group", height=420)
    auc_fig.update_layout(title="Per-class one-vs-rest test AUC (same order)", barmode="group", height=420)
    predicted = reference.argmax(1)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    cm = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues"))
    cm.update_layout(title=f"Confusion matrix ({'ensemble' if ensemble_probs is not None else best_name}, test split)",
                     xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed", height=520)
    figures.append(cm)
    return figures


def reliability_figure(labels: np.ndarray, models: dict[str, np.ndarray]) -> go.Figure:
    """How sure each model's test predictions said they were, against how often they were right: the top label's
    probability in ten bins (scikit-learn's ``calibration_curve`` of right or wrong), and each model's ECE.  On the
    diagonal, predictions said to be 80% sure are right 80% of the time; below it, surer than right."""
    from sklearn.calibration import calibration_curve

    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "gray"},
                               name="as sure as right"))
    for name, probs in models.items():
        right = probs.argmax(1) == labels
        accuracy, confidence = calibration_curve(right, probs.max(1), n_bins=10, pos_label=True)
        fig.add_trace(go.Scatter(x=confidence, y=accuracy, mode="lines+markers",
                                 name=f"{name} (ECE {expected_calibration_error(probs, labels):.3f})"))
    fig.update_layout(title="Confidence against accuracy on test (the probabilities `autocls predict` gives)",
                      xaxis_title="mean confidence of the bin", yaxis_title="share right", height=480,
                      xaxis_range=[0, 1], yaxis_range=[0, 1.02])
    return fig


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best trial; of a multi-objective study, the Pareto member with the best first objective (val top-1, or
    balanced accuracy)."""
    if len(study.directions) == 1:
        if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return study.best_trial
        # only trials cut by the budget or ASHA: the best of what they saved
        pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        key = RANKING_METRICS[ranking_metric(study)].best_key
        return max(pruned, key=lambda t: (t.user_attrs.get(key, -1.0), -t.number))
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(study.best_trials, key=lambda t: (sign * t.values[0], -t.number))


def _latest_ensemble(study: optuna.Study) -> Path | None:
    found = saved_ensembles(Path(study.user_attrs.get("folder", "")))
    return found[-1] if found else None


def build_report(study: optuna.Study, ensemble_dir: str | Path | None = None, out: str | Path | None = None,
                 attach: bool = True) -> Path:
    """Write ``report.html`` (self-contained: plotly.js inlined) and attach the figures to the study.

    Attached figures show in optuna-dashboard beside its own plots.

    Example:
        >>> study = optuna.load_study(study_name="digits", storage="sqlite:///studies/digits.db")  # doctest: +SKIP
        >>> path = build_report(study)  # doctest: +SKIP
    """
    folder = Path(study.user_attrs.get("folder", "."))
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        raise UserError(f"study '{study.study_name}' has no finished trial to report on yet")
    ensemble_dir = Path(ensemble_dir) if ensemble_dir else _latest_ensemble(study)
    if ensemble_dir is not None and not (ensemble_dir / MANIFEST_FILE).exists():
        raise UserError(f"'{ensemble_dir}' is not an autocls ensemble (no ensemble.json)")

    figures = [leaderboard_table(study), learning_curves(study)]
    importance = param_importances(study)
    if importance is not None:
        figures.append(importance)
    best = best_trial(study)
    best_artifacts = trial_artifacts(study, best)
    best_member = best_artifacts.load_member() if best_artifacts else None
    headline = ""
    if best_member is not None:
        from autocls.ensemble.build import study_data

        data = study_data(study)
        labels = data.test_y.numpy()
        best_probs = best_member.test_probs
        ensemble_probs = member_probs = None
        if ensemble_dir is not None:
            ensemble_probs = np.load(ensemble_dir / "test_probs.npy")
            member_probs = np.load(ensemble_dir / "best_member_test_probs.npy")
        figures += per_class_figures(data.classes, labels, best_probs, f"best trial #{best.number}",
                                     ensemble_probs, member_probs)
        # the best trial as `autocls predict` of its folder gives it: at the temperature the run fitted on val
        temperature = (best_artifacts.load_result() or {}).get("temperature", 1.0)
        reliability = {f"best trial #{best.number}, temperature {temperature:.2f}":
                       apply_temperature(best_probs, temperature)}
        if ensemble_probs is not None:
            reliability[f"ensemble ({ensemble_dir.name})"] = ensemble_probs
        figures.append(reliability_figure(labels, reliability))
        which = "best val top-1 on the Pareto front" if len(study.directions) > 1 else "best trial"
        headline = f"{which} #{best.number}: {_test_scores(summary(best_probs, labels))}"
        if ensemble_probs is not None:
            headline += f"; ensemble ({ensemble_dir.name}): {_test_scores(summary(ensemble_probs, labels))}"

    out = Path(out) if out else folder / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = [pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    counts = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] += 1
    name, dataset = escape(study.study_name), escape(str(study.user_attrs.get("dataset", "?")))  # user text
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>autocls report: {name}</title>
<style>body{{font-family:sans-serif;margin:2em;}} .fig{{margin-bottom:2em;}}</style></head>
<body><h1>autocls report: study '{name}'</h1>
<p>dataset <b>{dataset}</b>; trials: {counts['COMPLETE']} complete,
{counts['PRUNED']} pruned, {counts['FAIL']} failed, {counts['RUNNING']} running.</p>
<p>{escape(headline)}</p>
{''.join(f'<div class="fig">{p}</div>' for p in parts)}
</body></html>"""
    atomic_write_text(out, page)
    if attach:
        from optuna_dashboard import save_plotly_graph_object

        for i, fig in enumerate(figures[1:]):  # the table is the dashboard's own trial list
            save_plotly_graph_object(study, fig, graph_object_id=f"autocls-{i}")
    return out


def _test_scores(scores: dict) -> str:
    top5 = f", top-5 {scores['top5']:.2%}" if scores["top5"] is not None else ""  # none with five classes or fewer
    return f"test top-1 {scores['top1']:.2%}{top5}"
