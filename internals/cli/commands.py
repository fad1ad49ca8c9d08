"""One function per subcommand: parse nothing, print results, raise `UserError` on bad input."""

from __future__ import annotations

import argparse

from internals.cli.main import print_json
from internals.model import open_model


def _open(args: argparse.Namespace):
    return open_model(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)


def cmd_summary(args: argparse.Namespace) -> int:
    model = _open(args)
    summary = model.summary()
    if args.json:
        print_json(summary)
    else:
        from internals.cli.render import print_summary

        print_summary(summary)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from internals.cli.render import print_stats_table, stats_progress

    model = _open(args)
    names = model.tensor_names(args.tensor)
    from internals.stats_service import use_cache

    use_cache(not args.no_cache)
    with stats_progress(len(names), enabled=len(names) > 1) as progress:
        results = list(model.iter_stats(names, bins=args.bins, progress=progress))
    if args.json:
        from internals.aggregates import aggregate

        print_json({"tensors": results, "aggregates": aggregate(model.structure, results, model.summary()["num_layers"])})
    else:
        print_stats_table(results)
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    from internals.cli.forward import cmd_attention as run

    return run(args)


def cmd_lens(args: argparse.Namespace) -> int:
    from internals.cli.forward import cmd_lens as run

    return run(args)


def cmd_generate(args: argparse.Namespace) -> int:
    from internals.cli.forward import cmd_generate as run

    return run(args)


def cmd_worker(args: argparse.Namespace) -> int:
    from internals.worker.server import serve_from_args

    return serve_from_args(args)


def cmd_activations(args: argparse.Namespace) -> int:
    from internals.cli.causes import cmd_activations as run

    return run(args)


def cmd_patch(args: argparse.Namespace) -> int:
    from internals.cli.causes import cmd_patch as run

    return run(args)


def cmd_attribute(args: argparse.Namespace) -> int:
    from internals.cli.causes import cmd_attribute as run

    return run(args)
