"""The composition root of llm-internals: the one place that puts the engine, the lessons and the UI together.

`internals/` (the engine and its worker) never imports the lessons or the UI; `tui/` never imports torch.
This module, outside all three, registers the lessons' demos in the engine's demo registry, opens the
Textual explorer for the `explore` command (the default), and hands every other command to `internals.cli`.
The worker processes the explorer starts run through here too (`python -m llm_internals worker ...`), so
their demo registry is filled the same way. The `llm-internals` console script points at `main`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

#: What the explorer's own workers run (`python -m llm_internals worker ...`).
WORKER_ENTRY = "llm_internals"


def register_lessons() -> None:
    """Register the lessons' demos with the engine's worker demo registry."""
    from lessons.demos.registry import register_demos

    register_demos()


def run_explorer(args: argparse.Namespace) -> int:
    """`llm-internals [MODEL]`: connect to (or start) a model worker, then open the Textual explorer."""
    from internals.cli.explore import first_screen_info, make_client
    from internals.errors import UserError
    from internals.info_cache import load_model_info

    compared = None
    if getattr(args, "base", None) and not args.connect:
        from internals.cli.explore import check_compared

        compared = check_compared(args)  # mismatched models: one error line before anything else
    if not sys.stdout.isatty() and not os.environ.get("LLM_INTERNALS_FORCE_TUI"):
        raise UserError("the explorer needs a terminal; for scripts use `llm-internals summary|stats|attention|lens --json`")
    initial = None
    source = None
    label = args.model or "demo model"
    if compared is not None:
        source, label = compared
        initial = load_model_info(source) if args.no_worker else first_screen_info(source, args.trust_remote_code)
    elif not args.connect:
        from internals.sources import resolve_source

        source = resolve_source(args.model, args.revision)
        initial = load_model_info(source) if args.no_worker else first_screen_info(source, args.trust_remote_code)
    # With a cached or provisional tree the explorer opens at once and the worker finishes starting behind
    # it (a model the worker then refuses closes the explorer with its error line); with neither, wait for
    # the worker so that a model it cannot open is one error line before any screen is drawn.
    client = make_client(args, source, wait=initial is None, worker_entry=WORKER_ENTRY)
    try:
        from tui.app import ExplorerApp

        app = ExplorerApp(client, model_label=label, initial_info=initial, tune_gc=True,
                          compare_base=getattr(args, "base", None))
        app.run()
    finally:
        client.close()
    if app.startup_error:
        raise UserError(app.startup_error)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    register_lessons()
    from internals.cli.main import main as cli_main

    return cli_main(argv, explore=run_explorer)


def run() -> None:
    """The `llm-internals` console script: `main`, then the process ends without Python's slow teardown."""
    from internals.cli.main import run_and_exit

    run_and_exit(main)


if __name__ == "__main__":
    run()
