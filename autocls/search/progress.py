"""The live table a search shows while it runs, and its closing leaderboard."""
from __future__ import annotations

import sys
import threading
import time
from collections import Counter

import optuna
from rich.console import Console
from rich.live import Live
from rich.table import Table

from autocls.metrics import RANKING_METRICS


HEARTBEAT_S = 30


def _duration(seconds: float) -> str:
    """``45s``, ``12m``, ``1h05m``: the precision a time left has."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class SearchProgress:
    """Trials running / pruned / complete / failed, best so far, and an ETA against the budget."""

    def __init__(self, study: optuna.Study, n_trials: int | None, time_budget_s: float | None, enabled: bool = True,
                 start: float | None = None, metric: str = "accuracy"):
        self.study, self.n_trials, self.time_budget_s = study, n_trials, time_budget_s
        self.best_label = f"best val {RANKING_METRICS[metric].label}"  # what trials are ranked by
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.start = start or time.time()
        self.counts: Counter = Counter()
        self.best_complete: float | None = None  # best objective of the COMPLETE trials in the study
        self.finished_at_start = None
        self.live: Live | None = None
        self._last_line = ""
        # running trial number -> (epochs done, epochs, seconds its last epoch took or None, when it reported)
        self.epochs: dict[int, tuple[int, int, float | None, float]] = {}
        self.best_seen: float | None = None  # best val score reported by any trial, finished or not
        self._stop: threading.Event | None = None

    def __enter__(self):
        self.refresh()
        self.finished_at_start = self.finished
        if self.enabled and self.console.is_terminal:
            self.live = Live(self, console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        elif self.enabled:  # a log: a line at least every HEARTBEAT_S, so long epochs don't look like a hang
            self._stop = threading.Event()
            threading.Thread(target=self._heartbeat, daemon=True).start()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        if self._stop is not None:
            self._stop.set()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._show()  # cached counts and the clock only: no storage access from this thread

    @property
    def finished(self) -> int:
        return self.counts["COMPLETE"] + self.counts["PRUNED"] + self.counts["FAIL"]

    def epoch_done(self, number: int, epoch: int, epochs: int, val_acc: float, epoch_s: float | None = None) -> None:
        """A running trial reported an epoch: the display moves while trials train, not only when they end.

        ``epoch_s``, the seconds that epoch took (with its evaluation), gives the trial's time left: without a
        budget or a finished trial the search's ETA is unknown (half an hour on a CPU), and the trial's own
        is what a user can know then.
        """
        self.epochs[number] = (epoch, epochs, epoch_s, time.time())
        self.best_seen = val_acc if self.best_seen is None else max(self.best_seen, val_acc)
        self._show()

    def refresh(self) -> None:
        trials = self.study.get_trials(deepcopy=False)
        self.counts = Counter(t.state.name for t in trials)
        running = {t.number for t in trials if t.state.name == "RUNNING"}
        self.epochs = {n: e for n, e in self.epochs.items() if n in running}
        values = [t.values[0] for t in trials if t.state.name == "COMPLETE" and t.values]
        self.best_complete = max(values) if values else None
        self._show()

    @property
    def best(self) -> float | None:
        """The best val score (of the ranking metric) so far: of the finished trials, or reported by a running one."""
        known = [v for v in (self.best_complete, self.best_seen) if v is not None]
        return max(known) if known else None

    def _show(self) -> None:
        if self.enabled and self.live is None and self.finished_at_start is not None:
            line = self.summary()
            if line != self._last_line:  # not a terminal (CI, a log file): one line per change
                print(line, file=sys.stderr, flush=True)
                self._last_line = line

    def eta(self) -> str:
        elapsed = time.time() - self.start
        done_now = self.finished - (self.finished_at_start or 0)
        estimates = []
        if self.n_trials and done_now > 0:
            estimates.append(elapsed / done_now * max(0, self.n_trials - self.finished))
        if self.time_budget_s:
            estimates.append(max(0.0, self.time_budget_s - elapsed))
        return f"{min(estimates):.0f}s" if estimates else "?"

    def fields(self) -> dict[str, str]:
        """The numbers shown, as text: one source for the log line and the live table."""
        return {
            # a time budget without --trials sets no count: "0/∞" read as a search that would never end
            "finished": f"{self.finished}/{self.n_trials}" if self.n_trials else str(self.finished),
            "running": str(self.counts["RUNNING"]),
            "complete": str(self.counts["COMPLETE"]), "pruned": str(self.counts["PRUNED"]),
            "failed": str(self.counts["FAIL"]),
            "epochs": ", ".join(self._trial_epochs(n) for n in sorted(self.epochs)) or "-",
            self.best_label: f"{self.best:.2%}" if self.best is not None else "-",
            "elapsed": f"{time.time() - self.start:.0f}s", "ETA": self.eta(),
        }

    def _trial_epochs(self, number: int) -> str:
        epoch, epochs, epoch_s, reported = self.epochs[number]
        text = f"#{number}:{epoch}/{epochs}"
        if epoch_s is None or epoch >= epochs:
            return text
        # ASHA may stop the trial sooner: this is the time to the end of its epochs
        left = max(0.0, epoch_s * (epochs - epoch) - (time.time() - reported))
        return f"{text} {_duration(left)} left"

    def summary(self) -> str:
        return " | ".join(f"{name} {value}" for name, value in self.fields().items())

    def __rich__(self) -> Table:
        fields = self.fields()
        table = Table(title=f"autocls search: study '{self.study.study_name}'")
        for col in fields:
            table.add_column(col, justify="right")
        table.add_row(*fields.values())
        return table

    def final(self) -> None:
        if not self.enabled:
            return
        from autocls.search.runner import format_cell, leaderboard

        board = leaderboard(self.study)
        if board.empty:
            return
        # Trials queued and never started (a seed recipe the budget left no time for) have no values: an empty
        # row of state WAITING at the bottom of a 5-minute search's table read as a trial that hung.
        queued = int((board["state"] == "WAITING").sum())
        board = board[board["state"] != "WAITING"]
        table = Table(title="leaderboard")
        cols = [c for c in board.columns if c not in ("reason", "duration_s")][:10]
        for c in cols:
            table.add_column(str(c), justify="right")
        for _, row in board.head(15).iterrows():
            table.add_row(*[format_cell(row[c]) for c in cols])
        Console(width=max(140, Console().width)).print(table)
        if queued:
            print(f"{queued} queued trial{'s' * (queued > 1)} not started (seed recipes or proposals the time left "
                  f"no room for): the same command runs {'them' if queued > 1 else 'it'} first", file=sys.stderr)

