"""One function per subcommand: parse nothing, print results, raise `UserError` on bad input."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from internals.cli.main import print_json
from internals.model import open_model


def _open(args: argparse.Namespace):
    # summary and stats need no module classes: the headers answer when transformers would change nothing
    return open_model(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code, headers=True)


def cmd_summary(args: argparse.Namespace) -> int:
    model = _open(args)
    summary = model.summary()
    if args.json:
        print_json(summary)
    else:
        from internals.cli.render import print_summary

        print_summary(summary)
    return 0


def _stderr_may_be_a_terminal() -> bool:
    """False when rich would not draw a progress bar anyway (stderr not a terminal, nothing forcing one):
    then `stats --json` in a script or a pipe does not import rich at all."""
    return sys.stderr.isatty() or any(os.environ.get(k) for k in ("FORCE_COLOR", "TTY_INTERACTIVE", "TTY_COMPATIBLE"))


def cmd_stats(args: argparse.Namespace) -> int:
    model = _open(args)
    names = model.tensor_names(args.tensor)
    model.stats_cache.enabled = not args.no_cache
    if getattr(args, "device", None):
        model.stats_cache.use_device(args.device)
    bar: AbstractContextManager[Callable[[int, int, str], None] | None] = nullcontext(None)
    if len(names) > 1 and _stderr_may_be_a_terminal():
        from internals.cli.render import stats_progress

        bar = stats_progress(len(names))
    with bar as progress:
        results = list(model.iter_stats(names, bins=args.bins, progress=progress))
    if args.json:
        from internals.aggregates import aggregate

        print_json({"tensors": results, "aggregates": aggregate(model.structure, results, model.summary()["num_layers"]),
                    "tree_source": model.tree_source})
    else:
        from internals.cli.render import print_stats_table

        print_stats_table(results)
    return 0


def cmd_spectrum(args: argparse.Namespace) -> int:
    from internals.cli.render import print_spectrum_table, stats_progress
    from internals.spectrum import cache, iter_spectra, matrices_of
    from internals.weights import require_weights

    model = _open(args)
    store = require_weights(model.store, "spectrum")
    refs = _expert_matrices(model, args.tensor) or matrices_of(store, model.tensor_names(args.tensor),
                                                                 explicit=bool(args.tensor))
    cache.use_cache(not args.no_cache)
    with stats_progress(len(refs), enabled=len(refs) > 1, label="spectra") as update:
        progress = None if update is None else (lambda frac, name: update(int(frac * len(refs)), len(refs), name))
        results = list(iter_spectra(store, refs, progress=progress))
    if args.json:
        print_json({"tensors": results})
    else:
        print_spectrum_table(results)
    return 0


def _expert_matrices(model, pattern: str | None) -> list:
    """When `--tensor` matches no stored tensor but stacked expert parameters (e.g. Mixtral's fused
    `mlp.experts.gate_up_proj`): one matrix per expert of each, named `parameter[e]`; else nothing."""
    import fnmatch

    from internals.experts.spectra import expert_matrices

    if not pattern or any(fnmatch.fnmatchcase(n, pattern) for n in model.store.names()):
        return []
    params = [p.name for p in model.structure.params.values()
              if p.tied_to is None and len(p.shape) == 3 and p.stored and fnmatch.fnmatchcase(p.name, pattern)]
    return [ref for name in params for ref in expert_matrices(model, name)]


def cmd_worker(args: argparse.Namespace) -> int:
    from internals.worker.server import serve_from_args

    return serve_from_args(args)


#: The commands implemented in modules of their own, imported only when run (so `--help` stays fast).
ELSEWHERE: dict[str, str] = {
    "attention": "internals.cli.forward", "lens": "internals.cli.forward", "experts": "internals.cli.experts",
    "generate": "internals.cli.forward", "diff": "internals.cli.diff", "activations": "internals.cli.causes",
    "patch": "internals.cli.causes", "attribute": "internals.cli.causes",
}


def handler(command: str) -> Callable[[argparse.Namespace], int]:
    """The function that runs `command`: `cmd_<command>` of its module in ELSEWHERE, else of this one."""
    module = importlib.import_module(ELSEWHERE[command]) if command in ELSEWHERE else sys.modules[__name__]
    return getattr(module, f"cmd_{command}")
