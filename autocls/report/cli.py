"""``autocls report``."""
from __future__ import annotations


def cmd_report(args) -> int:
    from autocls.files import check_writable_file
    from autocls.report import build_report
    from autocls.search.runner import load_existing_study

    if args.out:
        check_writable_file(args.out, "--out")
    path = build_report(load_existing_study(args.study, args.storage), ensemble_dir=args.ensemble, out=args.out)
    print(f"report written to {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report of a study (and its ensemble)")
    p.add_argument("--study", default="digits")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///studies/<study>.db)")
    p.add_argument("--ensemble", help="ensemble folder (default: the study's newest)")
    p.add_argument("--out", help="HTML file (default studies/<study>/report.html)")
    p.set_defaults(func=cmd_report)
