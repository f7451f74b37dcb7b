"""Progress for people: how the runner reports (`Reporter`), as a rich progress bar on a
terminal, plain log lines otherwise, or nothing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from bench.plan import PlannedRun


@dataclass
class Reporter:
    """How progress reaches the user (a rich progress bar, plain lines, or nothing)."""

    start: Callable[[int, int], None] = lambda done, total: None
    before_run: Callable[[PlannedRun, int, int], None] = lambda run, done, total: None
    after_run: Callable[[PlannedRun, str], None] = lambda run, status: None
    message: Callable[[str], None] = lambda text: None
    stop: Callable[[], None] = lambda: None


def _eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def plain_reporter(per_run_s: float, stream=sys.stderr) -> Reporter:
    def before(run: PlannedRun, done: int, total: int) -> None:
        print(
            f"blkcmp: [{done + 1}/{total}] round {run.round} {run.target} {run.point_key} "
            f"(ETA {_eta((total - done) * per_run_s)})",
            file=stream,
            flush=True,
        )

    def after(run: PlannedRun, status: str) -> None:
        if status != "done":
            print(f"blkcmp: run {run.run_id}: {status}", file=stream, flush=True)

    return Reporter(
        before_run=before,
        after_run=after,
        message=lambda text: print(f"blkcmp: {text}", file=stream, flush=True),
    )


def rich_reporter(per_run_s: float) -> Reporter:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    state: dict = {}

    def start(done: int, total: int) -> None:
        if "task" not in state:
            progress.start()
            state["task"] = progress.add_task("runs", total=total, completed=done)
        progress.update(state["task"], total=total, completed=done)

    def before(run: PlannedRun, done: int, total: int) -> None:
        progress.update(state["task"], description=f"round {run.round} · {run.target} · {run.point_key}")

    def after(run: PlannedRun, status: str) -> None:
        progress.advance(state["task"])
        if status != "done":
            progress.console.print(f"run {run.run_id}: {status}")

    def stop() -> None:
        progress.stop()
        state.pop("task", None)

    return Reporter(
        start=start,
        before_run=before,
        after_run=after,
        message=lambda text: progress.console.print(f"blkcmp: {text}"),
        stop=stop,
    )


def reporter_for(per_run_s: float, quiet: bool = False) -> Reporter:
    if quiet:
        return Reporter()
    return rich_reporter(per_run_s) if sys.stderr.isatty() else plain_reporter(per_run_s)
