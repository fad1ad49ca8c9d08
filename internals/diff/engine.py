"""`diff_weights`: what fine-tuning, distillation or an adapter changed in the weights of a model.

Opens both sides lazily (`open_sides`), matches their tensors (`matching`), then streams each pair once or
twice (`weights`), optionally computes the singular values of every 2-D change (`rank`), and groups the
results by layer and component (`aggregates`). Per-tensor results are cached on disk by the identity of
both sides' files (`cache`), so a repeated request reads nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from internals.diff.adapter import Adapter, is_adapter_folder, open_adapter
from internals.diff.aggregates import aggregate
from internals.diff.cache import DiffCache
from internals.diff.matching import Matching, match_adapter, match_models
from internals.diff.rank import tensor_rank
from internals.diff.types import TensorDiff, WeightDiff
from internals.diff.weights import diff_tensor
from internals.model import OpenedModel, open_model
from internals.weights import require_weights

Progress = Callable[[float, str], None]
Check = Callable[[], None]


@dataclass
class DiffSides:
    """BASE opened lazily, and TUNED as a second model or as a LoRA adapter over BASE."""

    base: OpenedModel
    tuned: OpenedModel | None = None
    adapter: Adapter | None = None
    base_name: str = ""
    tuned_name: str = ""

    @property
    def kind(self) -> Literal["full", "adapter"]:
        return "adapter" if self.adapter is not None else "full"

    @property
    def tuned_store(self):
        return self.adapter.store if self.adapter is not None else self.tuned.store  # type: ignore[union-attr]

    def tuned_files(self) -> list[Path]:
        if self.adapter is not None:
            return [self.adapter.folder / "adapter_model.safetensors", self.adapter.folder / "adapter_config.json"]
        src = self.tuned.source  # type: ignore[union-attr]
        return list(src.weight_files) + list(src.pickle_files)

    def match(self, pattern: str | None = None) -> Matching:
        if self.adapter is not None:
            return match_adapter(self.base, self.adapter, pattern)
        return match_models(self.base, self.tuned, pattern)  # type: ignore[arg-type]

    def close(self) -> None:
        self.base.close()
        if self.tuned is not None:
            self.tuned.close()
        if self.adapter is not None:
            self.adapter.close()


def open_sides(base: str, tuned: str, *, trust_remote_code: bool = False) -> DiffSides:
    """Open BASE and TUNED (any model source; TUNED may be a PEFT LoRA adapter folder) without reading values."""
    base_model = open_model(base, trust_remote_code=trust_remote_code)
    try:
        require_weights(base_model.store, "diff (BASE)")
        if is_adapter_folder(tuned):
            return DiffSides(base=base_model, adapter=open_adapter(tuned), base_name=base, tuned_name=tuned)
        tuned_model = open_model(tuned, trust_remote_code=trust_remote_code)
    except BaseException:
        base_model.close()
        raise
    try:
        require_weights(tuned_model.store, "diff (TUNED)")
    except BaseException:
        base_model.close()
        tuned_model.close()
        raise
    return DiffSides(base=base_model, tuned=tuned_model, base_name=base, tuned_name=tuned)


def diff_weights(sides: DiffSides, *, pattern: str | None = None, bins: int = 64, rank: bool = False,
                 use_cache: bool = True, progress: Progress | None = None, check: Check | None = None) -> WeightDiff:
    """Exact per-tensor weight change of TUNED against BASE, grouped by layer and component.

    pattern: only tensors whose (matched or stored) name matches this glob. rank: singular values and ranks
    of every 2-D change. progress(fraction, message) after each tensor; check() raises to cancel.
    """
    matching = sides.match(pattern)
    bstore, tstore = sides.base.store, sides.tuned_store
    cache = DiffCache(list(sides.base.source.weight_files) + list(sides.base.source.pickle_files), sides.tuned_files(),
                      enabled=use_cache)
    results: list[TensorDiff] = []
    total = len(matching.pairs)
    try:
        for i, pair in enumerate(matching.pairs):
            if progress:
                progress(i / max(1, total), pair.name)
            wkey, rkey = f"w|{pair.name}|{pair.base}|{pair.tuned}|{bins}", f"r|{pair.name}|{pair.base}|{pair.tuned}"
            item = cache.get(wkey)
            if item is None:
                item = diff_tensor(pair, bstore, tstore, bins=bins, check=check)  # type: ignore[arg-type]
                cache.put(wkey, item)
            item = TensorDiff(**{**item, "rank": None})  # type: ignore[typeddict-item]
            if rank and len(pair.shape) == 2:
                info = cache.get(rkey)
                if info is None:
                    info = tensor_rank(pair, bstore, tstore, check)  # type: ignore[arg-type]
                    cache.put(rkey, info)
                item["rank"] = info
            results.append(item)
    finally:
        cache.save()
    if progress:
        progress(1.0, "")
    return WeightDiff(base=sides.base_name, tuned=sides.tuned_name, kind=sides.kind, tensors=results,
                      only_in_base=matching.only_in_base, only_in_tuned=matching.only_in_tuned,
                      aggregates=aggregate(sides.base.structure, results))


def open_compared(tuned: str | None, base: str, *, trust_remote_code: bool = False) -> tuple[OpenedModel, DiffSides]:
    """What the explorer opens for `llm-internals TUNED --base BASE`: (the model it explores, both sides).

    The model explored is TUNED; when TUNED is a LoRA adapter folder it is BASE (an adapter has no tree of
    its own: its tree is its base's, and ΔW comes from the adapter's factors). Mismatched models raise the
    `UserError` of the matching here, before anything is drawn (only file headers are read).
    """
    if not tuned:
        from internals.demo_path import demo_model_path

        tuned = str(demo_model_path())
    sides = open_sides(base, tuned, trust_remote_code=trust_remote_code)
    try:
        sides.match()
    except BaseException:
        sides.close()
        raise
    return (sides.base if sides.adapter is not None else sides.tuned), sides  # type: ignore[return-value]
