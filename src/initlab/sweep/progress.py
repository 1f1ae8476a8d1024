"""The progress of a compare: a rich bar with ETA on a terminal, plain lines in a log file."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool, description: str):
    """A rich progress bar with ETA on a terminal; plain lines (every ~5%) in a log file."""
    if not enabled:
        yield lambda n: None
        return
    import sys
    import time

    if not sys.stderr.isatty():
        start, state = time.perf_counter(), {"done": 0, "shown": -1}

        def advance(n: int) -> None:
            state["done"] += n
            pct = int(100 * state["done"] / max(total, 1))
            if pct // 5 != state["shown"] // 5 or state["done"] >= total:
                state["shown"] = pct
                elapsed = time.perf_counter() - start
                eta = elapsed / state["done"] * (total - state["done"]) if state["done"] else float("nan")
                print(
                    f"{description}: {state['done']}/{total} steps ({pct}%), {elapsed:.0f} s elapsed, ETA {eta:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )

        yield advance
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
