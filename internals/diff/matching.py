"""Which tensor of BASE goes with which tensor of TUNED.

Each side is read with its own loading rules (`internals.structure`): a parameter's name is its in-memory
name, and its values come from the stored tensor transformers would load into it. A tied parameter (the
lm_head of a model that ties its embeddings) takes its values from the parameter it is tied to, so a tied
base is matched against an untied fine-tune: the base's lm_head is its embedding. Parameters that
transformers builds from several stored tensors (fused experts) are matched by their stored names.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from internals.diff.adapter import Adapter, LoraFactors, delta_shape
from internals.errors import UserError
from internals.model import OpenedModel
from internals.structure import _natural_key
from internals.weights import require_weights


@dataclass
class TensorPair:
    """One compared tensor: its name, shape, where the base values are and where the change comes from."""

    name: str
    shape: tuple[int, ...]
    base: str  # stored name in the base's WeightStore
    tuned: str | None = None  # stored name in the tuned WeightStore (full model, or a tensor the adapter replaces)
    lora: LoraFactors | None = None  # adapter: ΔW = scale · B·A

    @property
    def changed_by_adapter(self) -> bool:
        return self.lora is not None


@dataclass
class Matching:
    pairs: list[TensorPair]
    only_in_base: list[str] = field(default_factory=list)
    only_in_tuned: list[str] = field(default_factory=list)


def _names(model: OpenedModel) -> tuple[dict[str, str], set[str]]:
    """In-memory name -> stored tensor holding it (aliases of tied parameters included), and the alias names."""
    store = require_weights(model.store, "diff")
    mapping: dict[str, str] = {}
    aliases: set[str] = set()
    covered: set[str] = set()
    for p in model.structure.params.values():
        info = model.structure.params.get(p.tied_to) if p.tied_to else p
        if info is None or len(info.stored) != 1:
            continue
        mapping[p.name] = info.stored[0]
        covered.add(info.stored[0])
        if p.tied_to:
            aliases.add(p.name)
    for stored in store.names():  # converted / unmapped stored tensors: by their stored names
        if stored not in covered:
            mapping.setdefault(stored, stored)
    return mapping, aliases


def _check_architectures(base: OpenedModel, tuned: OpenedModel) -> None:
    a = getattr(base.config, "model_type", None) if base.config is not None else None
    b = getattr(tuned.config, "model_type", None) if tuned.config is not None else None
    if a and b and a != b:
        raise UserError(f"BASE is a {a} model but TUNED is a {b} model: diff compares a model with a fine-tuned copy of it")


def _check_shape(name: str, a: tuple[int, ...], b: tuple[int, ...]) -> None:
    if tuple(a) != tuple(b):
        raise UserError(f"{name} has shape {list(a)} in BASE but {list(b)} in TUNED: the two models do not have "
                        "the same sizes (diff compares a model with a fine-tuned copy of it)")


def match_models(base: OpenedModel, tuned: OpenedModel, pattern: str | None = None) -> Matching:
    """Pair the tensors of two full models; raise UserError on a different architecture or shape."""
    _check_architectures(base, tuned)
    bmap, b_alias = _names(base)
    tmap, t_alias = _names(tuned)
    bstore, tstore = require_weights(base.store, "a diff"), require_weights(tuned.store, "a diff")
    pairs: list[TensorPair] = []
    seen: set[tuple[str, str]] = set()
    # a parameter's own name before the alias that ties another parameter to it (lm_head -> embedding)
    for name in sorted(bmap, key=lambda n: (n in b_alias and n in t_alias, _natural_key(n))):
        if name not in tmap:
            continue
        key = (bmap[name], tmap[name])
        if key in seen:  # both sides tie this parameter to one already compared
            continue
        seen.add(key)
        a, b = bstore.entry(key[0]).shape, tstore.entry(key[1]).shape
        _check_shape(name, a, b)
        pairs.append(TensorPair(name=name, shape=tuple(a), base=key[0], tuned=key[1]))
    if not pairs:
        raise UserError(f"BASE and TUNED have no tensor in common (e.g. BASE has {next(iter(bmap), '?')}, TUNED has "
                        f"{next(iter(tmap), '?')}): they are not the same architecture")
    pairs.sort(key=lambda p: _natural_key(p.name))
    only_base = [n for n in sorted(bmap, key=_natural_key) if n not in tmap and n not in b_alias]
    only_tuned = [n for n in sorted(tmap, key=_natural_key) if n not in bmap and n not in t_alias]
    return Matching(_filter(pairs, pattern), only_base, only_tuned)


def match_adapter(base: OpenedModel, adapter: Adapter, pattern: str | None = None) -> Matching:
    """Pair every base tensor with its LoRA change (or none); raise UserError when a target is not in the base."""
    bmap, b_alias = _names(base)
    store = require_weights(base.store, "a diff")
    for weight in adapter.factors:
        if weight not in bmap:
            hint = f" (the adapter was made for {adapter.base_model_name})" if adapter.base_model_name else ""
            raise UserError(
                f"the adapter changes {weight}, which BASE does not have{hint}: give the base model it was trained on"
            )
    for name in adapter.replaced:
        if name not in bmap:
            raise UserError(f"the adapter replaces {name}, which BASE does not have: give the base model it was trained on")
    pairs: list[TensorPair] = []
    for name in sorted(bmap, key=_natural_key):
        lora = adapter.factors.get(name)
        replaced = adapter.replaced.get(name)
        if name in b_alias and lora is None and replaced is None:
            continue
        shape = tuple(store.entry(bmap[name]).shape)
        if lora is not None:
            _check_shape(name, shape, delta_shape(lora, adapter.store))
        if replaced is not None:
            _check_shape(name, shape, adapter.store.entry(replaced).shape)
        pairs.append(TensorPair(name=name, shape=shape, base=bmap[name], tuned=replaced, lora=lora))
    return Matching(_filter(pairs, pattern))


def _filter(pairs: list[TensorPair], pattern: str | None) -> list[TensorPair]:
    if not pattern:
        return pairs
    kept = [p for p in pairs if fnmatch.fnmatchcase(p.name, pattern) or fnmatch.fnmatchcase(p.base, pattern)]
    if not kept:
        raise UserError(f"no tensor of both models matches {pattern!r}: `llm-internals diff BASE TUNED --json` lists them all")
    return kept
