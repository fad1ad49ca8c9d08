"""`experts`: which experts a mixture-of-experts model routes each token of a prompt to, layer by layer.

Runs through the client like the other forward-pass commands (in this process unless --connect), so the CLI
and the explorer's routing view share the worker's `experts` operation.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from internals.cli.forward import run_forward

#: The keys of each layer in `experts --json` (docs/contracts.md); `router` and `shared` are documented extras.
LAYER_KEYS = ("layer", "experts", "weights", "load", "weight_share", "unused", "router", "shared")


def routing_json(result: dict) -> dict:
    """The `experts --json` object (docs/contracts.md, "Expert routing") from the `experts` operation's result."""
    return {"tokens": result["tokens"], "token_ids": result["token_ids"], "num_experts": result["num_experts"],
            "top_k": result["top_k"], "layers": [{k: layer[k] for k in LAYER_KEYS} for layer in result["layers"]]}


def cmd_experts(args: argparse.Namespace) -> int:
    return run_forward(args, lambda client: client.experts(args.prompt), routing_json, print_routing)


def print_routing(result: dict[str, Any]) -> None:
    """Each layer's routing and load, as rich tables."""
    console = Console()
    tokens = result["tokens"]
    for layer in result["layers"]:
        table = Table(title=f"layer {layer['layer']}: each token's top-{result['top_k']} of {result['num_experts']} "
                            f"experts (routing weight)", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("token")
        table.add_column("experts (weight)")
        for i, (token, chosen, weights) in enumerate(zip(tokens, layer["experts"], layer["weights"])):
            table.add_row(str(i), repr(token), "  ".join(f"{e} ({w:.2f})" for e, w in zip(chosen, weights)))
        console.print(table)
        load = "  ".join(f"{e}: {n} ({share:.0%})" for e, (n, share) in enumerate(zip(layer["load"], layer["weight_share"])))
        unused = ", ".join(map(str, layer["unused"])) or "none"
        console.print(f"  load (tokens per expert, share of routing weight): {load}   unused: {unused}")
        if layer.get("shared"):
            console.print(f"  shared expert {layer['shared']['module']}: every token passes through it")
