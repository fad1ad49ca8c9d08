"""`attention`, `lens` and `generate`: forward passes, in this process or on a worker (--connect)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from internals.cli.main import print_json
from internals.worker.protocol import jsonable

R = TypeVar("R")


def _client(args: argparse.Namespace):
    """A worker given with --connect, else the model served in this process (no extra process for a script)."""
    from internals.cli.explore import make_client

    if not getattr(args, "connect", None):
        args.no_worker = True
    return make_client(args)


def ask(args: argparse.Namespace, request: Callable[[Any], R]) -> R:
    """`request(client)` on the client of `args` (`_client`: --connect or this process), closed after: the
    one place the forward commands open and close their client."""
    client = _client(args)
    try:
        return request(client)
    finally:
        client.close()


def run_forward(args: argparse.Namespace, request: Callable[[Any], R], to_json: Callable[[R], Any],
                show: Callable[[R], None]) -> int:
    """A forward command: `request(client)` (see `ask`), then `to_json(result)` printed with --json, else
    `show(result)` (rich tables); exit status 0."""
    result = ask(args, request)
    if args.json:
        print_json(to_json(result))
    else:
        show(result)
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    result = ask(args, lambda client: client.attention(args.prompt, args.layer))
    weights = result["weights"]
    if args.json:
        print_json({
            "tokens": result["tokens"], "token_ids": result["token_ids"], "layer": result["layer"],
            "num_heads": result["num_heads"], "num_key_value_heads": result["num_key_value_heads"],
            "kv_head_of": result["kv_head_of"], "weights": jsonable(weights),
        })
        return 0
    console = Console()
    tokens = result["tokens"]
    table = Table(
        title=f"layer {result['layer']}: {result['num_heads']} query heads share {result['num_key_value_heads']} KV heads; "
        f"where each head looks from the last token",
        title_justify="left",
    )
    table.add_column("head", justify="right")
    table.add_column("KV head", justify="right")
    table.add_column("top keys (weight)")
    for h in range(result["num_heads"]):
        row = weights[h][-1]
        top = row.argsort()[::-1][:4]
        table.add_row(str(h), str(result["kv_head_of"][h]), "  ".join(f"{tokens[k]!r} {row[k]:.2f}" for k in top))
    console.print(table)
    return 0


def cmd_lens(args: argparse.Namespace) -> int:
    track = getattr(args, "track", None)
    result, tracks = ask(args, lambda client: (client.lens(args.prompt, top_k=args.top),
                                               client.lens_tracks(args.prompt, track) if track else None))
    layers = [{"layer": e["layer"], "top_ids": jsonable(e["top_ids"]), "top_probs": jsonable(e["top_probs"]),
               "top_tokens": e["top_tokens"]} for e in result["layers"]]
    if args.json:
        out = {"tokens": result["tokens"], "token_ids": result["token_ids"], "layers": layers}
        if tracks is not None:
            from internals.cli.causes import lens_tracks_json

            out["tracks"] = lens_tracks_json(tracks)
        print_json(out)
        return 0
    if tracks is not None:
        from internals.cli.causes import print_lens_tracks

        print_lens_tracks(tracks)
    table = Table(title="logit lens: top next token per layer (rows) and position (columns)", title_justify="left")
    table.add_column("layer", justify="right")
    for tok in result["tokens"]:
        table.add_column(repr(tok)[1:-1][:10])
    for i, entry in enumerate(layers):
        label = "output" if i == len(layers) - 1 else str(entry["layer"])
        table.add_row(
            label, *(f"{repr(toks[0])[1:-1][:8]} {probs[0]:.2f}" for toks, probs in zip(entry["top_tokens"], entry["top_probs"]))
        )
    Console().print(table)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    client = _client(args)
    pieces = []
    try:
        if not args.json:
            sys.stdout.write(args.prompt)
            sys.stdout.flush()
        for item in client.generate(
            args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
        ):
            pieces.append(item)
            if not args.json:
                sys.stdout.write(item.get("text", item.get("piece", "")))
                sys.stdout.flush()
    finally:
        client.close()
    if args.json:
        print_json({"prompt": args.prompt, "token_ids": [p["token_id"] for p in pieces],
                    "text": "".join(p.get("text", "") for p in pieces)})
    else:
        sys.stdout.write("\n")
    return 0


__all__ = ["cmd_attention", "cmd_lens", "cmd_generate"]
