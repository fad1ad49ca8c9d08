"""The explorer's engine side: its client (an existing worker, this process, or its own worker) and the tree it
draws first. Opening the Textual explorer itself is the composition root's job (`llm_internals.py`): the engine
never imports the UI."""

from __future__ import annotations

import argparse
import os

from internals.errors import UserError


def make_client(args: argparse.Namespace, source=None, wait: bool = True, worker_entry: str = "internals.cli"):
    """The explorer's client: an existing worker (--connect), this process (--no-worker), or its own worker
    (run as `python -m <worker_entry> worker`: the composition root passes itself so that demos are registered)."""
    from internals.worker.client import InProcessClient, ModelRefused, SocketClient, WorkerCrashed
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

        sides = None
        if getattr(args, "base", None):
            from internals.diff import open_compared

            opened, sides = open_compared(args.model, args.base, trust_remote_code=args.trust_remote_code)
        else:
            opened = open_model(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)
        service = ModelService(opened, RuntimeOptions(args.device, args.dtype, args.max_memory))
        service.diff_sides = sides
        return InProcessClient(service)
    if source is None:  # checked here, so that a bad MODEL is one error line before any screen opens
        from internals.sources import resolve_source

        resolve_source(args.model, args.revision)
    worker = ManagedWorker(WorkerOptions(model=args.model, revision=args.revision, trust_remote_code=args.trust_remote_code,
                                         device=args.device, dtype=args.dtype, max_memory=args.max_memory,
                                         base=getattr(args, "base", None), entry_module=worker_entry))
    try:
        worker.start(wait=wait)
    except (ModelRefused, WorkerCrashed) as exc:
        worker.close()
        raise UserError(str(exc)) from None
    return worker


def first_screen_info(source, trust_remote_code: bool = False) -> dict | None:
    """What the explorer draws before its worker answers: the cached exact tree, else a provisional one
    read from the file headers (internals.provisional_info), else None (then it waits for the worker)."""
    from internals.info_cache import load_model_info
    from internals.provisional_info import provisional_model_info

    return load_model_info(source) or provisional_model_info(source, trust_remote_code)


def check_compared(args: argparse.Namespace):
    """`--base BASE`: open both sides from their headers and match them, so that mismatched models are one
    `error:` line before any screen opens. Returns the source of the model the explorer shows (BASE's when
    MODEL is a LoRA adapter folder) and a label saying what is compared."""
    from internals.diff import open_compared

    opened, sides = open_compared(args.model, args.base, trust_remote_code=args.trust_remote_code)
    try:
        what = "adapter" if sides.adapter is not None else "model"
        return opened.source, f"{args.model or 'demo model'} ({what}) vs base {args.base}"
    finally:
        sides.close()
