"""A PEFT LoRA adapter folder read as low-rank weight changes, never merged into the base.

For every adapted module peft stores two factors, `lora_A` (r x in) and `lora_B` (out x r), under
`base_model.model.<module>.lora_A.weight` / `.lora_B.weight` (embeddings: `lora_embedding_A` / `_B`). The change
of the module's weight is ΔW = scale · B·A with scale = alpha / r (rsLoRA: alpha / sqrt(r)), where r and alpha
come from `rank_pattern` / `alpha_pattern` when a pattern matches the module (peft's own matching rule), else
from `r` / `lora_alpha`. Conv1D modules saved with `fan_in_fan_out` (GPT-2) and embeddings store their weight
transposed relative to B·A, so their ΔW is (B·A)ᵀ. Full tensors the adapter also saves (`modules_to_save`,
e.g. a retrained lm_head) replace the base tensor of the same name.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from internals.errors import UserError
from internals.weights import WeightStore

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PREFIX = "base_model.model."
_LORA_KEY = re.compile(
    r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.[A-Za-z0-9_-]+)?(\.weight)?$"
)


@dataclass
class LoraFactors:
    """ΔW = scale · B·A (transposed when `transpose`) for the weight `<module>.weight` of the base."""

    module: str
    a_name: str  # stored names in the adapter's WeightStore
    b_name: str
    rank: int
    alpha: float
    scale: float
    transpose: bool  # the base weight is stored (in, out): ΔW = (B·A)ᵀ

    @property
    def weight_name(self) -> str:
        return f"{self.module}.weight"


@dataclass
class Adapter:
    """A LoRA adapter folder: its config, its factors by base weight name, and the full tensors it replaces."""

    folder: Path
    config: dict
    store: WeightStore
    factors: dict[str, LoraFactors] = field(default_factory=dict)  # base weight name -> factors
    replaced: dict[str, str] = field(default_factory=dict)  # base tensor name -> stored name in the adapter

    @property
    def base_model_name(self) -> str | None:
        return self.config.get("base_model_name_or_path")

    def close(self) -> None:
        self.store.close()


def is_adapter_folder(path: str | Path) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() and (p / ADAPTER_CONFIG).is_file()


def _pattern_value(patterns: dict, module: str, default):
    """peft's `get_pattern_key`: the first pattern that matches the end of the module name wins."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def open_adapter(path: str | Path) -> Adapter:
    """Read a LoRA adapter folder (`adapter_config.json` + `adapter_model.safetensors`), or raise UserError."""
    folder = Path(path).expanduser().resolve()
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except (OSError, ValueError):
        raise UserError(f"{folder / ADAPTER_CONFIG} is not valid JSON: re-save the adapter with peft's save_pretrained") from None
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise UserError(f"{folder} is a {peft_type} adapter: diff reads LoRA adapters only")
    if config.get("use_dora"):
        raise UserError(
            f"{folder} is a DoRA adapter (use_dora): its change is not B·A alone; merge it with peft and diff the merged folder"
        )
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        pickled = folder / "adapter_model.bin"
        hint = " (a pickle: re-save it with safe_serialization=True)" if pickled.is_file() else ""
        raise UserError(f"{folder} has no {ADAPTER_WEIGHTS}{hint}")
    store = WeightStore([weights])
    adapter = Adapter(folder=folder, config=config, store=store)
    halves: dict[str, dict[str, str]] = {}
    for name in store.names():
        short = name[len(_PREFIX):] if name.startswith(_PREFIX) else name
        m = _LORA_KEY.match(short)
        if m:
            side = "A" if m.group("kind").endswith("A") else "B"
            halves.setdefault(m.group("module"), {})[side] = name
            halves[m.group("module")]["embedding"] = "embedding" if "embedding" in m.group("kind") else ""
        elif "lora_magnitude_vector" in short:
            raise UserError(f"{folder} holds DoRA magnitudes ({short}): merge it with peft and diff the merged folder")
        else:  # modules_to_save / trainable tokens saved as full tensors
            adapter.replaced[re.sub(r"\.(modules_to_save\.default|original_module|base_layer)(?=\.)", "", short)] = name
    fan_in_fan_out = bool(config.get("fan_in_fan_out"))
    for module, parts in halves.items():
        if "A" not in parts or "B" not in parts:
            raise UserError(
                f"{folder}: module {module} has only lora_{'A' if 'A' in parts else 'B'}: the adapter file is incomplete"
            )
        a, b = store.entry(parts["A"]).shape, store.entry(parts["B"]).shape
        embedding = bool(parts.get("embedding"))
        if len(a) != 2 or len(b) != 2 or (b[1] != a[0] if not embedding else b[1] != a[0]):
            raise UserError(f"{folder}: {module} has lora_A {list(a)} and lora_B {list(b)}, which do not multiply")
        rank = int(a[0])
        alpha = float(_pattern_value(config.get("alpha_pattern"), module, config.get("lora_alpha", 8)))
        configured = int(_pattern_value(config.get("rank_pattern"), module, config.get("r", rank)))
        if configured != rank:
            raise UserError(f"{folder}: {module} has rank {rank} in the file but r={configured} in adapter_config.json")
        scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        adapter.factors[f"{module}.weight"] = LoraFactors(module, parts["A"], parts["B"], rank, alpha, scale,
                                                         transpose=embedding or fan_in_fan_out)
    if not adapter.factors and not adapter.replaced:
        raise UserError(f"{folder / ADAPTER_WEIGHTS} holds no LoRA factors")
    return adapter


def delta_shape(f: LoraFactors, store: WeightStore) -> tuple[int, int]:
    """The shape of ΔW as the base stores the weight."""
    out_dim = store.entry(f.b_name).shape[0]
    in_dim = store.entry(f.a_name).shape[1]
    return (in_dim, out_dim) if f.transpose else (out_dim, in_dim)
