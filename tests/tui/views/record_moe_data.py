"""Record what the shipped MoE demo model's worker answers to the MoE views' requests (tensor view of fused
experts and routers, with each expert's spectrum and the spectrum tab's experts; experts view), for the views'
fake data source. Run again after a change to the wire format:

    PYTHONPATH=$PWD python tests/tui/views/record_moe_data.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from record_demo_data import encode

OUT = Path(__file__).resolve().parent / "recorded" / "moe.json.gz"
FUSED = "model.layers.0.mlp.experts.gate_up_proj"
STORED = "model.layers.0.block_sparse_moe.experts.3.w1.weight"
ROUTING_PROMPT = "def add(self, value):\n    self.total = self.total + value\n    return self.total"


def main() -> None:
    from internals.demo_path import demo_path
    from internals.model import open_model
    from internals.spectrum import cache
    from internals.worker.client import InProcessClient
    from internals.worker.service import ModelService

    cache.use_cache(False)  # computed now, never read from a stale cache
    client = InProcessClient(ModelService(open_model(str(demo_path("moe")))))
    tree = client.tree()
    routers = [n["name"] for n in tree if n["kind"] == "parameter" and n.get("component") == "router"]
    record = {
        "summary": client.summary(),
        "tree": tree,
        "tensor_stats": {name: client.tensor_stats(name, bins=64, clip=False) for name in (STORED, routers[0])},
        "matrix_preview": {name: client.matrix_preview(name, rows=48, cols=160) for name in (STORED, routers[0])},
        "expert_stats": {FUSED: client.expert_stats(FUSED, bins=64)},
        "expert_spectra": {FUSED: client.expert_spectra(FUSED)},
        "spectrum": {name: client.spectrum(name) for name in (*(f"{FUSED}[{e}]" for e in range(4)), STORED)},
        "router_summary": {name: client.router_summary(name) for name in routers},
        "experts": {ROUTING_PROMPT: client.experts(ROUTING_PROMPT)},
    }
    client.close()
    with gzip.open(OUT, "wt", encoding="utf-8") as fh:
        json.dump(encode(record), fh)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
