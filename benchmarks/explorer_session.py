"""The explorer started headless on a worker, as `llm-internals MODEL` starts it, until its model tree is drawn:
the start that bench_explorer and bench_first_stats time from the command in a fresh process (they import this
after their clock started, like the rest of the explorer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def tree_drawn(worker: Any, initial: Any) -> AsyncIterator[tuple[Any, Any]]:
    """`(app, pilot)`: an `ExplorerApp` on `worker` (first screen from `initial`, 120×40), entered once the model
    tree is drawn."""
    from tui.app import ExplorerApp

    app = ExplorerApp(worker, model_label="bench", initial_info=initial, tune_gc=True)
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.nodes:
            await asyncio.sleep(0.005)
        await pilot.pause()
        yield app, pilot
