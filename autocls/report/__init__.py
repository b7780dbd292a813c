"""Reports: one self-contained plotly HTML page per study, figures also attached for optuna-dashboard.

    >>> from autocls.report import build_report
"""
__all__ = ["build_report"]


def __getattr__(name: str):
    # plotly is imported when a report is built, not by every command: ``autocls search`` runs where only the
    # search's packages are (a lent GPU machine gets Ray and Optuna carried to it, not plotly)
    if name == "build_report":
        from autocls.report.html import build_report

        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
