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

from internals.worker.protocol import jsonable

OUT = Path(__file__).resolve().parent / "recorded" / "demo.json.gz"
OUT_CAUSES = OUT.with_name("causes.json.gz")  # activations, patching, attribution (views of those names)
#: The spectra (`spectrum`, `spectra`), in a file of their own: re-recording them leaves demo.json.gz alone.
SPECTRA_OUT = OUT.with_name("spectra.json.gz")
TENSOR = "model.layers.1.self_attn.q_proj.weight"
ATTENTION_PROMPT = "def add(self, value):\n    self.total = self.total + value\n    return self.total"
LENS_PROMPT = "import numpy as np\nx = np.zeros"
CAUSES_PROMPT = "def f(x): return x"  # the default prompt of the activations and attribution views
TRACKED = ["(", "."]  # followed through the layers on LENS_PROMPT
PATCH_PROMPTS = ("def f(x): return x", "def g(x): return x")  # the patching view's default clean and corrupted
TOKENS_TEXT = "def __init__(self, name):\n    self.name = name  # café 中文"


def encode(value):
    """JSON with arrays tagged (`{"__ndarray__": ..., "dtype": ...}`) so that the harness reads them back."""
    return jsonable(value, array=lambda a: {"__ndarray__": a.tolist(), "dtype": str(a.dtype)})


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
    causes = {
        "activations": {CAUSES_PROMPT: client.activations(CAUSES_PROMPT)},
        "patch": {"|".join(PATCH_PROMPTS): client.patch(*PATCH_PROMPTS)},
        "attribute": {CAUSES_PROMPT: client.attribute(CAUSES_PROMPT)},
        "lens_tracks": {"|".join([LENS_PROMPT, *TRACKED]): client.lens_tracks(LENS_PROMPT, TRACKED)},
    }
    OUT.parent.mkdir(exist_ok=True)
    for path, data in ((OUT, record), (OUT_CAUSES, causes)):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            json.dump(encode(data), fh)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
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
