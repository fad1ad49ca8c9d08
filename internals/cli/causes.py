"""`activations`, `patch` and `attribute`: the residual stream, activation patching and direct logit
attribution, through the same worker operations as the explorer (in this process unless --connect).

The `--json` forms are the contracts of docs/contracts.md ("Activations and causes"); the human forms are
rich tables (patching shows a progress bar on stderr while its patched runs go).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from internals.cli.forward import run_forward
from internals.cli.render import fraction_progress
from internals.worker.contract import SINK_SHARE
from internals.worker.protocol import jsonable


def activations_json(result: dict[str, Any]) -> dict[str, Any]:
    """The `activations --json` contract: massive_channels as channel ids; their layers and positions in
    massive_channel_spans; the rule that flags a value as massive."""
    return {
        "tokens": result["tokens"], "token_ids": result["token_ids"], "layers": result["layers"],
        "residual_norm": jsonable(result["residual_norm"]), "massive": result["massive"],
        "massive_channels": [c["channel"] for c in result["massive_channels"]],
        "massive_channel_spans": result["massive_channels"],
        "sink_share": _nan_to_none(result["sink_share"]), "rule": result["rule"],
    }


def patch_json(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("clean_tokens", "corrupt_tokens", "target", "target_id", "corrupt_top", "corrupt_top_id",
            "clean_logit_diff", "corrupt_logit_diff", "normalized")
    out = {k: result[k] for k in keys}
    out.update({grid: None if result[grid] is None else jsonable(result[grid])
                for grid in ("residual", "attention", "mlp", "heads")})
    return out


def attribute_json(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("tokens", "target", "target_id", "logit", "bias", "embedding", "attention", "heads", "mlp")
    return {k: result[k] for k in keys}


def _nan_to_none(array: np.ndarray) -> list:
    return [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(array, dtype=np.float64)]


def cmd_activations(args: argparse.Namespace) -> int:
    return run_forward(args, lambda client: client.activations(args.prompt), activations_json, print_activations)


def print_activations(result: dict[str, Any]) -> None:
    """The residual norms, the largest activations and the sink heads, as rich tables."""
    console = Console()
    norms = result["residual_norm"]
    table = Table(title="residual stream L2 norm (rows: the embedding, then after each layer)", title_justify="left")
    table.add_column("layer", justify="right")
    for token in result["tokens"]:
        table.add_column(repr(token)[1:-1][:10], justify="right")
    for name, row in zip(result["layers"], norms):
        table.add_row(str(name), *(f"{v:.1f}" for v in row))
    console.print(table)
    table = Table(title=f"largest activations (massive: {result['rule']})", title_justify="left")
    for column in ("value", "layer", "position", "token", "channel", "x median", "massive"):
        table.add_column(column, justify="right")
    for m in result["massive"][:10]:
        ratio = "-" if m["ratio_to_median"] is None else f"{m['ratio_to_median']:.0f}"
        table.add_row(f"{m['value']:.1f}", str(m["layer"]), str(m["position"]), repr(m["token"]), str(m["channel"]),
                      ratio, "yes" if m["is_massive"] else "")
    console.print(table)
    sinks = [(layer, head, float(v)) for layer, row in enumerate(result["sink_share"]) for head, v in enumerate(row)
             if v > SINK_SHARE]
    console.print(f"sink heads (mean attention on the first token > {SINK_SHARE}): "
                  + (", ".join(f"L{layer}H{head} {v:.2f}" for layer, head, v in sinks) or "none"))


def cmd_patch(args: argparse.Namespace) -> int:
    def patch(client: Any) -> dict[str, Any]:
        with fraction_progress("patching", enabled=not args.json) as progress:
            return client.patch(args.clean, args.corrupt, target=args.target, on_progress=progress)

    return run_forward(args, patch, patch_json, print_patch)


def print_patch(result: dict[str, Any]) -> None:
    """The patching grids, as rich tables."""
    console = Console()
    console.print(f"target {result['target']!r} vs the corrupted run's top {result['corrupt_top']!r}: logit difference "
                  f"clean {result['clean_logit_diff']:.3f}, corrupted {result['corrupt_logit_diff']:.3f}"
                  + ("" if result["normalized"] else " (equal: cells are raw changes, not normalised)"))
    tokens = result["clean_tokens"]
    for grid in ("residual", "attention", "mlp"):
        table = Table(title=f"{grid}: share of the clean answer restored (1 = clean, 0 = corrupted)", title_justify="left")
        table.add_column("layer", justify="right")
        for clean, corrupt in zip(tokens, result["corrupt_tokens"]):
            name = repr(clean)[1:-1][:8] if clean == corrupt else f"{repr(clean)[1:-1][:4]}/{repr(corrupt)[1:-1][:4]}"
            table.add_column(name, justify="right")
        for layer, row in enumerate(result[grid]):
            table.add_row(str(layer), *(f"{v:.2f}" for v in row))
        console.print(table)
    table = Table(title="heads (each head's output at every position)", title_justify="left")
    table.add_column("layer", justify="right")
    for head in range(result["heads"].shape[1]):
        table.add_column(f"h{head}", justify="right")
    for layer, row in enumerate(result["heads"]):
        table.add_row(str(layer), *(f"{v:.2f}" for v in row))
    console.print(table)


def cmd_attribute(args: argparse.Namespace) -> int:
    return run_forward(args, lambda client: client.attribute(args.prompt, target=args.target), attribute_json,
                       print_attribution)


def print_attribution(result: dict[str, Any]) -> None:
    """The parts' and top heads' shares of the logit, as a rich table."""
    table = Table(title=f"direct logit attribution of {result['target']!r} after {result['tokens'][-1]!r}",
                  title_justify="left")
    table.add_column("part")
    table.add_column("adds to the logit", justify="right")
    table.add_column("top heads", justify="left")
    table.add_row("embedding", f"{result['embedding']:+.3f}", "")
    for layer, (attn, mlp, heads) in enumerate(zip(result["attention"], result["mlp"], result["heads"])):
        top = sorted(range(len(heads)), key=lambda h: -abs(heads[h]))[:3]
        table.add_row(f"layer {layer} attention", f"{attn:+.3f}", "  ".join(f"h{h} {heads[h]:+.2f}" for h in top))
        table.add_row(f"layer {layer} MLP", f"{mlp:+.3f}", "")
    table.add_row("bias", f"{result['bias']:+.3f}", "")
    total = result["embedding"] + sum(result["attention"]) + sum(result["mlp"])
    table.add_row("sum + bias", f"{total + result['bias']:+.3f}", f"= logit {result['logit']:+.3f}")
    Console().print(table)


def lens_tracks_json(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("token_ids", "labels", "position", "readouts", "best")
    return {**{k: result[k] for k in keys}, "ranks": jsonable(result["ranks"]), "probs": jsonable(result["probs"])}


def print_lens_tracks(result: dict[str, Any]) -> None:
    best = {(b["layer"], b["stage"], b["token_id"]) for b in result["best"]}
    table = Table(title=f"logit lens at position {result['position']}: rank and probability of each tracked token "
                        f"(* its best readout)", title_justify="left")
    table.add_column("readout")
    for label in result["labels"]:
        table.add_column(repr(label), justify="right")
    for row, readout in enumerate(result["readouts"]):
        cells = []
        for column, token in enumerate(result["token_ids"]):
            mark = "*" if (readout["layer"], readout["stage"], token) in best else ""
            cells.append(f"#{int(result['ranks'][row][column])} {float(result['probs'][row][column]):.3f}{mark}")
        name = f"layer {readout['layer']} " + ("after attention" if readout["stage"] == "attention" else "output")
        table.add_row(name, *cells)
    Console().print(table)


__all__ = ["activations_json", "attribute_json", "cmd_activations", "cmd_attribute", "cmd_patch", "lens_tracks_json",
           "patch_json", "print_lens_tracks"]
