"""Handing the cores of idle trial slots to the trials still running, on one machine.

Near the end of a search on a laptop, the last long trial would crawl on its
one core while the others idle.  Once no further trial will start, the driver
writes each running trial's new thread count to a small file of this folder,
and the trial reads it after each report (``torch.set_num_threads``).  Files,
not Ray messages: a Ray Tune function trainable has no channel from the
driver besides its config, and driver and trials share this machine's disk.

Example:
    >>> import tempfile
    >>> cores = CoreHandOver(tempfile.mkdtemp(), cpus=8, threads_per_trial=1)  # in a study: <folder>/cores
    >>> cores.share([3, 5])          # trials 3 and 5 still run: 4 threads each
    >>> CoreHandOver.threads_for(cores.file(3))
    4
"""
from __future__ import annotations

from pathlib import Path

from autocls.files import atomic_write_text


class CoreHandOver:
    """Thread counts for running trials, one file per trial number (see the module docstring)."""

    def __init__(self, folder: str | Path, cpus: float, threads_per_trial: int):
        self.folder, self.cpus, self.threads_per_trial = Path(folder), cpus, threads_per_trial

    def file(self, number: int) -> Path:
        return self.folder / f"{number:05d}"

    def reset(self, number: int) -> None:
        """A trial starts with its own share (an earlier session's file goes)."""
        self.file(number).unlink(missing_ok=True)

    def share(self, running: list[int]) -> None:
        """Split the machine's CPUs among the ``running`` trials."""
        if not running:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        threads = max(self.threads_per_trial, int(self.cpus // len(running)))
        for number in running:
            atomic_write_text(self.file(number), str(threads))

    @staticmethod
    def threads_for(file: str | Path | None) -> int | None:
        """The thread count handed to a trial, or None (none handed over yet)."""
        try:
            return int(Path(file).read_text()) if file else None
        except (OSError, ValueError):
            return None
