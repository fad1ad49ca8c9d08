"""The real module tree of a model, built on the meta device, and where each parameter's values are stored.

With a config, the tree is the one transformers builds (`AutoModelForCausalLM.from_config` inside
accelerate's `init_empty_weights`): exact module names, classes and shapes, no weight memory. Each parameter
is then mapped to the stored tensor(s) that hold its values. transformers 5 may convert a checkpoint while
loading (renamed prefixes, per-expert tensors fused into one 3-D tensor); such parameters are marked
`converted` and keep the list of stored tensors they come from, so the tree always shows the in-memory
layout and says so. Without a config (a bare `.safetensors` file) the tree comes from the tensor names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from internals.errors import ModelSourceError, UserError
from internals.weights import WeightStore

GROUPS = ("embedding", "attention", "mlp", "norm", "lm_head", "other")
#: Components drawn in the cross-layer views, in display order.
LAYER_COMPONENTS = ("q", "k", "v", "o", "qkv", "gate", "up", "down", "gate_up", "experts", "router", "norm")

_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer|decoder_layers)\.(\d+)(?:\.|$)")
_COMPONENT_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(^|\.)lm_head(\.|$)|(^|\.)output\.weight$|embed_out"), "lm_head"),
    (re.compile(r"embed|(^|\.)wte(\.|$)|(^|\.)wpe(\.|$)|word_embeddings|tok_embeddings"), "embedding"),
    (re.compile(r"norm|(^|\.)ln_|layernorm|(^|\.)ln\d"), "norm"),
    (re.compile(r"experts?\.(\d+\.)?(gate_up_proj|down_proj|up_proj|gate_proj|w1|w2|w3)"), "experts"),
    (re.compile(r"(\.|^)(block_sparse_moe|mlp|moe)\.(gate|router)(\.weight|\.bias|$)|\.router\."), "router"),
    (re.compile(r"(c_attn|qkv_proj|query_key_value|wqkv|Wqkv|qkv)(\.|$)"), "qkv"),
    (re.compile(r"(q_proj|(\.|^)query|(\.|^)wq|q_lin)(\.|$)"), "q"),
    (re.compile(r"(k_proj|(\.|^)key|(\.|^)wk|k_lin)(\.|$)"), "k"),
    (re.compile(r"(v_proj|(\.|^)value|(\.|^)wv|v_lin)(\.|$)"), "v"),
    (re.compile(r"(o_proj|out_proj|(\.|^)wo|attn\.c_proj|attention\.dense|attn\.dense|out_lin)(\.|$)"), "o"),
    (re.compile(r"gate_up_proj(\.|$)"), "gate_up"),
    (re.compile(r"(gate_proj|(\.|^)w1|ffn_gate)(\.|$)"), "gate"),
    (re.compile(r"(up_proj|(\.|^)w3|c_fc|fc1|dense_h_to_4h|ffn_up)(\.|$)"), "up"),
    (re.compile(r"(down_proj|(\.|^)w2|mlp\.c_proj|fc2|dense_4h_to_h|ffn_down)(\.|$)"), "down"),
]
_ATTN_RE = re.compile(r"attn|attention")
_MLP_RE = re.compile(r"mlp|feed_forward|ffn|moe|experts")


def classify(name: str) -> str:
    """The component kind of a parameter (q, k, v, o, gate, up, down, norm, embedding, lm_head, ...)."""
    for pattern, comp in _COMPONENT_RULES:
        if pattern.search(name):
            return comp
    return "other"


def layer_of(name: str) -> int | None:
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def group_of(name: str, component: str) -> str:
    """Which of `GROUPS` a parameter's count goes to in the parameter breakdown."""
    if component in ("embedding", "lm_head", "norm"):
        return component
    if component in ("q", "k", "v", "o", "qkv"):
        return "attention"
    if component in ("gate", "up", "down", "gate_up", "experts", "router"):
        return "mlp"
    if _ATTN_RE.search(name):
        return "attention"
    if _MLP_RE.search(name):
        return "mlp"
    return "other"


@dataclass
class ParamInfo:
    """One parameter of the in-memory model and where its values come from."""

    name: str
    shape: tuple[int, ...]
    component: str
    group: str
    layer: int | None
    tied_to: str | None = None  # set on the alias of a tied parameter (e.g. lm_head.weight)
    stored: list[str] = field(default_factory=list)  # stored tensor names holding its values
    converted: bool = False  # values are converted at load time (renamed, fused, split)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def direct(self) -> str | None:
        """The stored tensor that holds exactly this parameter, when there is one."""
        return self.stored[0] if len(self.stored) == 1 and not self.converted else None


@dataclass
class ModuleInfo:
    name: str
    cls: str
    parent: str | None


@dataclass
class ModelStructure:
    """Module tree + parameter map of a model."""

    modules: list[ModuleInfo]
    params: dict[str, ParamInfo]  # in registration order, tied aliases included
    config: object | None  # transformers PretrainedConfig
    architecture: str | None
    from_config: bool
    unmapped_stored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # parameters with no stored values

    @property
    def unique_params(self) -> list[ParamInfo]:
        return [p for p in self.params.values() if p.tied_to is None]

    @property
    def num_converted(self) -> int:
        return sum(1 for p in self.params.values() if p.converted)

    @property
    def layout(self) -> str:
        if not self.from_config:
            return "stored tensor names (no config: module classes unknown)"
        if self.num_converted:
            return (f"transformers in-memory layout; {self.num_converted} parameters are converted at load time "
                    f"from differently named or split stored tensors")
        return "transformers in-memory layout (same names as the stored tensors)"

    @property
    def num_layers(self) -> int:
        layers = {p.layer for p in self.params.values() if p.layer is not None}
        return max(layers) + 1 if layers else 0


def load_config(path: Path, trust_remote_code: bool = False):
    """AutoConfig for a config.json file or a folder, with errors a user can act on."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except ValueError as exc:
        msg = str(exc)
        if "trust_remote_code" in msg:
            raise UserError(
                f"{path} needs its own Python code to load: pass --trust-remote-code only if you trust its author"
            ) from None
        model_type = re.search(r"model type `([^`]+)`", msg)
        if model_type or "Unrecognized model" in msg or "does not recognize" in msg:
            import transformers

            kind = model_type.group(1) if model_type else "?"
            raise UserError(
                f"unknown architecture (model_type {kind!r}) for transformers {transformers.__version__}: "
                "upgrade transformers, or pass --trust-remote-code if the folder ships its code"
            ) from None
        raise UserError(f"cannot read the config at {path}: {msg.splitlines()[0]}") from None
    except OSError as exc:
        raise ModelSourceError(f"cannot read the config at {path}: {str(exc).splitlines()[0]}") from None


def build_meta_model(config, trust_remote_code: bool = False):
    """The real transformers model for `config` on the meta device (no weight memory), tied as loaded."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    try:
        with init_empty_weights():
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        msg = str(exc).splitlines()[0]
        if "Unrecognized configuration class" in msg:
            raise UserError(
                f"{type(config).__name__} is not a causal language model that transformers can build: "
                "llm-internals explores causal LMs"
            ) from None
        raise UserError(f"transformers cannot build this model: {msg}") from None
    try:
        model.tie_weights()
    except Exception:  # noqa: BLE001 - some custom models have no tying logic
        pass
    return model


def structure_from_model(model, config, store: WeightStore | None) -> ModelStructure:
    """Describe a (meta) model's modules and parameters and map them onto the stored tensors."""
    modules: list[ModuleInfo] = []
    for name, module in model.named_modules():
        parent = name.rsplit(".", 1)[0] if "." in name else ("" if name else None)
        modules.append(ModuleInfo(name, type(module).__name__, parent))
    params: dict[str, ParamInfo] = {}
    first_of: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        comp = classify(name)
        info = ParamInfo(name, tuple(p.shape), comp, group_of(name, comp), layer_of(name))
        key = id(p)
        if key in first_of:
            info.tied_to = first_of[key]
        else:
            first_of[key] = name
        params[name] = info
    struct = ModelStructure(modules, params, config, type(model).__name__, from_config=True)
    if store is not None:
        _map_stored(struct, model, store)
    return struct


def structure_from_names(store: WeightStore) -> ModelStructure:
    """A tree from stored tensor names alone (a `.safetensors` file without a config)."""
    params: dict[str, ParamInfo] = {}
    module_names: dict[str, None] = {"": None}
    for entry in store:
        comp = classify(entry.name)
        params[entry.name] = ParamInfo(entry.name, entry.shape, comp, group_of(entry.name, comp),
                                       layer_of(entry.name), stored=[entry.name])
        parts = entry.name.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            module_names[".".join(parts[:i])] = None
    ordered = sorted(module_names, key=_natural_key)
    modules = [ModuleInfo(n, "?", (n.rsplit(".", 1)[0] if "." in n else "") if n else None) for n in ordered]
    params = dict(sorted(params.items(), key=lambda kv: _natural_key(kv[0])))
    return ModelStructure(modules, params, None, None, from_config=False)


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _map_stored(struct: ModelStructure, model, store: WeightStore) -> None:
    """Fill `ParamInfo.stored`: each stored tensor is renamed with transformers' own loading rules (renamings,
    prefix handling, at most one converter), so the mapping is exactly what `from_pretrained` would do."""
    rename = _loader_renamer(model)
    by_target: dict[str, list[str]] = {}
    for stored_name in store.names():
        by_target.setdefault(rename(stored_name), []).append(stored_name)
    mapped: set[str] = set()
    for info in struct.params.values():
        sources = by_target.get(info.name)
        if sources is None:
            continue
        info.stored = sorted(sources, key=_natural_key)
        info.converted = info.stored != [info.name]
        mapped.update(sources)
    struct.unmapped_stored = sorted(set(store.names()) - mapped, key=_natural_key)
    struct.missing = [p.name for p in struct.params.values() if not p.stored and p.tied_to is None]


def _loader_renamer(model):
    """A function stored-name -> in-memory name, following transformers' checkpoint loading rules."""
    meta_state = {name: None for name, _ in model.named_parameters(remove_duplicate=False)}
    prefix = getattr(model, "base_model_prefix", None) or None
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

        rules = get_model_conversion_mapping(model) or []
        renamings = [r for r in rules if isinstance(r, WeightRenaming)]
        converters = [r for r in rules if isinstance(r, WeightConverter)]
    except Exception:  # noqa: BLE001 - older/newer transformers without this API: names are taken as they are
        rename_source_key = None

    def rename(name: str) -> str:
        if rename_source_key is not None:
            try:
                return rename_source_key(name, renamings, converters, prefix, meta_state)[0]
            except Exception:  # noqa: BLE001
                pass
        if name not in meta_state and prefix and f"{prefix}.{name}" in meta_state:
            return f"{prefix}.{name}"
        return name

    return rename
