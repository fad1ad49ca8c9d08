"""`llm-internals [MODEL]`: connect to (or start) a model worker, then open the Textual explorer."""

from __future__ import annotations

import argparse
import os
import sys

from internals.errors import UserError


def make_client(args: argparse.Namespace, source=None, wait: bool = True):
    """The explorer's client: an existing worker (--connect), this process (--no-worker), or its own worker."""
    from internals.worker.client import InProcessClient, SocketClient, WorkerCrashed
    from internals.worker.spawn import ManagedWorker, WorkerOptions

    if getattr(args, "connect", None):
        if not os.path.exists(args.connect):
            raise UserError(f"no worker socket at {args.connect}: start one with `llm-internals worker MODEL --socket {args.connect}`")
        try:
            return SocketClient(args.connect)
        except WorkerCrashed as exc:
            raise UserError(str(exc)) from None
    if getattr(args, "no_worker", False):
        from internals.model import open_model
        from internals.worker.service import ModelService, RuntimeOptions

        opened = open_model(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)
        return InProcessClient(ModelService(opened, RuntimeOptions(args.device, args.dtype, args.max_memory)))
    if source is None:  # checked here, so that a bad MODEL is one error line before any screen opens
        from internals.sources import resolve_source

        resolve_source(args.model, args.revision)
    worker = ManagedWorker(WorkerOptions(model=args.model, revision=args.revision, trust_remote_code=args.trust_remote_code,
                                         device=args.device, dtype=args.dtype, max_memory=args.max_memory))
    try:
        worker.start(wait=wait)
    except WorkerCrashed as exc:
        worker.close()
        message = str(exc)
        raise UserError(message[len("error: "):] if message.startswith("error: ") else message) from None
    return worker


def first_screen_info(source, trust_remote_code: bool = False) -> dict | None:
    """What the explorer draws before its worker answers: the cached exact tree, else a provisional one
    read from the file headers (internals.provisional_info), else None (then it waits for the worker)."""
    from internals.info_cache import load_model_info
    from internals.provisional_info import provisional_model_info

    return load_model_info(source) or provisional_model_info(source, trust_remote_code)


def run_explorer(args: argparse.Namespace) -> int:
    if not sys.stdout.isatty() and not os.environ.get("LLM_INTERNALS_FORCE_TUI"):
        raise UserError("the explorer needs a terminal; for scripts use `llm-internals summary|stats|attention|lens --json`")
    initial = None
    source = None
    if not args.connect:
        from internals.info_cache import load_model_info
        from internals.sources import resolve_source

        source = resolve_source(args.model, args.revision)
        initial = load_model_info(source) if args.no_worker else first_screen_info(source, args.trust_remote_code)
    # With a cached or provisional tree the explorer opens at once and the worker finishes starting behind
    # it (a model the worker then refuses closes the explorer with its error line); with neither, wait for
    # the worker so that a model it cannot open is one error line before any screen is drawn.
    client = make_client(args, source, wait=initial is None)
    try:
        from tui.app import ExplorerApp

        app = ExplorerApp(client, model_label=args.model or "demo model", initial_info=initial, tune_gc=True)
        app.run()
    finally:
        client.close()
    if app.startup_error:
        raise UserError(app.startup_error)
    return 0
