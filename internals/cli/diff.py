"""`llm-internals diff BASE TUNED`: the weight change of every tensor, and with --prompt the change in behaviour."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from internals.cli.main import print_json
from internals.cli.render import stats_progress
from internals.cli.tables import Column, cell, output_console, print_table


def cmd_diff(args: argparse.Namespace) -> int:
    from internals.diff import diff_weights, open_sides

    sides = open_sides(args.base, args.tuned, trust_remote_code=args.trust_remote_code)
    try:
        total = len(sides.match(args.tensor).pairs)
        with stats_progress(total, enabled=total > 1 and not args.json, label="diff") as bar:
            progress = (lambda f, m: bar(round(f * total), total, m)) if bar else None
            result: dict[str, Any] = dict(diff_weights(sides, pattern=args.tensor, bins=args.bins, rank=args.rank,
                                                       use_cache=not args.no_cache, progress=progress))
        if args.prompt is not None:
            from internals.diff.behaviour import diff_behaviour

            tuned = sides.adapter.folder if sides.adapter is not None else sides.tuned.source  # type: ignore[union-attr]
            result["behaviour"] = diff_behaviour(sides.base.source, tuned, args.prompt, top=args.top, device=args.device,
                                                 dtype=args.dtype, max_memory=args.max_memory,
                                                 trust_remote_code=args.trust_remote_code)
    finally:
        sides.close()
    if args.json:
        print_json(result)
    else:
        print_diff(result)
    return 0


def print_diff(result: dict[str, Any], console: Console | None = None) -> None:
    """The tensors by relative change (largest first), the groups, and the behaviour on the prompt."""
    console = console or output_console()
    tensors = sorted(result["tensors"], key=lambda t: -(t["rel_change"] if t["rel_change"] is not None else float("inf")))
    changed = sum(1 for t in tensors if t["delta_norm"] > 0)
    rank = any(t["rank"] for t in tensors)
    columns = [Column("name", "left", wraps=True), Column("shape", "left", keep=3), Column("rel change", keep=6),
               Column("‖ΔW‖", keep=5), Column("‖W‖", keep=3), Column("cosine", keep=5), Column("max |ΔW|", keep=4)]
    columns += [Column("stable rank", keep=2), Column("eff. rank 90/99%", keep=2)] if rank else []
    rows = []
    for t in tensors:
        row = [t["name"], "×".join(map(str, t["shape"])), cell(t["rel_change"]), cell(t["delta_norm"]), cell(t["base_norm"]),
               cell(t["cosine"], ".6f"), cell(t["max_abs_change"])]
        if rank:
            r = t["rank"]
            row += [cell(r["stable_rank"], ".3g"), f"{r['effective_rank_90']}/{r['effective_rank_99']}"] if r else ["-", "-"]
        rows.append(row)
    print_table(console, f"{result['kind']} diff: {changed} of {len(tensors)} tensors changed (largest relative change "
                         "first)", columns, rows)
    for what in ("only_in_base", "only_in_tuned"):
        if result[what]:
            console.print(f"{what.replace('_', ' ')}: {', '.join(result[what])}")
    groups = Table(title="By component", title_justify="left")
    for col in ("component", "tensors", "rel change", "‖ΔW‖"):
        groups.add_column(col, justify="left" if col == "component" else "right")
    for name, g in result["aggregates"]["by_component"].items():
        groups.add_row(name, str(g["tensors"]), cell(g["rel_change"]), cell(g["delta_norm"]))
    console.print(groups)
    behaviour = result.get("behaviour")
    if behaviour:
        _print_behaviour(behaviour, console)


def _print_behaviour(b: dict[str, Any], console: Console) -> None:
    table = Table(title="KL(tuned ‖ base) of the next-token distribution at each position (nats)", title_justify="left")
    table.add_column("position", justify="right")
    table.add_column("token")
    table.add_column("KL", justify="right")
    table.add_column("residual cosine (last layer)", justify="right")
    last = b["residual_cosine"][-1]
    for i, (tok, kl) in enumerate(zip(b["tokens"], b["kl"])):
        table.add_row(str(i), repr(tok), f"{kl:.4g}", f"{last[i]:.4f}")
    console.print(table)
    moves = Table(title="Next token after the prompt: log-probability change (tuned − base)", title_justify="left")
    moves.add_column("rose")
    moves.add_column("Δ log p", justify="right")
    moves.add_column("fell")
    moves.add_column("Δ log p", justify="right")
    for up, down in zip(b["rose"], b["fell"]):
        moves.add_row(repr(up["token"]), f"{up['delta_logprob']:+.3f}", repr(down["token"]), f"{down['delta_logprob']:+.3f}")
    console.print(moves)


__all__ = ["cmd_diff", "print_diff"]
