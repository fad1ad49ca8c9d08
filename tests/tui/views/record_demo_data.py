"""Record what the shipped demo model's worker answers to the views' requests, for the views' fake data
source (tests/tui/views/fake_source.py). Run again after a change to the wire format:

    PYTHONPATH=$PWD python tests/tui/views/record_demo_data.py             # both files
    PYTHONPATH=$PWD python tests/tui/views/record_demo_data.py --spectra   # recorded/spectra.json.gz only

Arrays are stored as {"__ndarray__": nested lists, "dtype": ...}; the fake turns them back into numpy.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "recorded" / "demo.json.gz"
#: The spectra (`spectrum`, `spectra`), in a file of their own: re-recording them leaves demo.json.gz alone.
SPECTRA_OUT = OUT.with_name("spectra.json.gz")
TENSOR = "model.layers.1.self_attn.q_proj.weight"
ATTENTION_PROMPT = "def add(self, value):\n    self.total = self.total + value\n    return self.total"
LENS_PROMPT = "import numpy as np\nx = np.zeros"
TOKENS_TEXT = "def __init__(self, name):\n    self.name = name  # café 中文"


def encode(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def main() -> None:
    from internals.demo_path import demo_model_path
    from internals.model import open_model
    from internals.worker.client import InProcessClient
    from internals.worker.service import ModelService

    client = InProcessClient(ModelService(open_model(str(demo_model_path()))))
    tokens = client.tokenize(TOKENS_TEXT)
    record = {
        "summary": client.summary(),
        "tree": client.tree(),
        "tensor_stats": {TENSOR: client.tensor_stats(TENSOR, bins=64, clip=False)},
        "matrix_preview": {TENSOR: client.matrix_preview(TENSOR, rows=48, cols=160)},
        "cross_layer": client.cross_layer(),
        "tokenize": {TOKENS_TEXT: tokens},
        "neighbours": {str(i): client.neighbours(i, k=12) for i in tokens["ids"][:3]},
        "attention": {f"{layer}": client.attention(ATTENTION_PROMPT, layer, bins=96) for layer in (0, 1)},
        "lens": {LENS_PROMPT: client.lens(LENS_PROMPT, top_k=5)},
    }
    OUT.parent.mkdir(exist_ok=True)
    with gzip.open(OUT, "wt", encoding="utf-8") as fh:
        json.dump(encode(record), fh)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
    record_spectra(client)


def record_spectra(client) -> None:
    from internals.spectrum import cache

    cache.use_cache(False)  # what the engine computes now, never an old cache file
    record = {"spectrum": {TENSOR: client.spectrum(TENSOR)}, "spectra": client.spectra()}
    with gzip.open(SPECTRA_OUT, "wt", encoding="utf-8") as fh:
        json.dump(encode(record), fh)
    print(f"wrote {SPECTRA_OUT} ({SPECTRA_OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--spectra"]:  # only the spectra file
        from internals.demo_path import demo_model_path
        from internals.model import open_model
        from internals.worker.client import InProcessClient
        from internals.worker.service import ModelService

        record_spectra(InProcessClient(ModelService(open_model(str(demo_model_path())))))
    else:
        main()
