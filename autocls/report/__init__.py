"""Reports: one self-contained plotly HTML page per study, figures also attached for optuna-dashboard."""
from autocls.report.html import build_report

__all__ = ["build_report"]
