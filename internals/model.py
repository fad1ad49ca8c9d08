"""`open_model`: the engine's entry point. A model opened lazily: its tree, facts and tensor values.

Opening reads the config and the safetensors headers only, and builds the module tree on the meta device.
Tensor values are read when statistics are asked for, one tensor at a time from memory maps.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from internals.errors import ModelSourceError, UserError
from internals.facts import summarize
from internals.sources import ModelSource, resolve_source
from internals.stats_service import StatisticsCache
from internals.structure import (
    ModelStructure,
    build_meta_model,
    load_config,
    structure_from_model,
    structure_from_names,
)
from internals.weights import WeightStore, require_weights


@dataclass
class OpenedModel:
    """A model opened for exploration. Cheap to create; reads values on demand."""

    source: ModelSource
    structure: ModelStructure
    store: WeightStore | None
    trust_remote_code: bool = False
    _summary: dict[str, Any] | None = field(default=None, repr=False)
    _tree: list[dict[str, Any]] | None = field(default=None, repr=False)
    stats_cache: StatisticsCache = field(default_factory=StatisticsCache, repr=False)
    #: "transformers" (module tree built by transformers on the meta device) or "headers" (read from
    #: config.json and the safetensors headers alone: a file without config, or a checkpoint whose stored
    #: names already are the model's, see `open_model(headers=True)`)
    tree_source: str = "transformers"

    @property
    def config(self):
        return self.structure.config

    def summary(self) -> dict[str, Any]:
        if self._summary is None:
            self._summary = summarize(self.structure, self.store, path=str(self.source.path), source_kind=self.source.kind)
            self._summary["tree_source"] = self.tree_source
        return self._summary

    def tree(self) -> list[dict[str, Any]]:
        if self._tree is None:
            from internals.tree import tree_nodes

            self._tree = tree_nodes(self.structure, self.store)
        return self._tree

    # --- statistics -------------------------------------------------------------------------------------
    def tensor_names(self, pattern: str | None = None) -> list[str]:
        """Stored tensor names (file layout), optionally filtered by a glob; raises if nothing matches."""
        store = require_weights(self.store, "statistics")
        names = store.names()
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not names:
                raise UserError(f"no stored tensor matches {pattern!r}: `llm-internals stats MODEL --json` lists them all")
        return names

    def stored_name_of(self, name: str) -> str:
        """Map a parameter name (in-memory layout) or a stored name to the stored tensor holding it."""
        store = require_weights(self.store, "statistics")
        if name in store:
            return name
        info = self.structure.params.get(name)
        if info is not None and info.tied_to is not None:
            info = self.structure.params[info.tied_to]
        if info is not None and len(info.stored) == 1:
            return info.stored[0]
        if info is not None and info.stored:
            raise UserError(
                f"{name} is built at load time from {len(info.stored)} stored tensors (e.g. {info.stored[0]}): ask for those"
            )
        raise UserError(f"no tensor named {name!r}: `llm-internals stats MODEL --json` lists the stored tensors")

    def tensor_stats(self, name: str, bins: int = 64, value_range: tuple[float, float] | None = None,
                     clip: bool = False) -> dict[str, Any]:
        """Exact statistics of one tensor (parameter or stored name), as the `stats --json` item.

        clip=True: the histogram covers [p1, p99] (when not empty), derived from the same single read."""
        stored = self.stored_name_of(name)
        store = require_weights(self.store, "statistics")
        if clip and value_range is None:
            return self.stats_cache.clipped(store, stored, bins=bins)
        return self.stats_cache.stats(store, stored, bins=bins, value_range=value_range)

    def iter_stats(self, names: list[str], bins: int = 64,
                   progress: Callable[[int, int, str], None] | None = None) -> Iterator[dict[str, Any]]:
        store = require_weights(self.store, "statistics")
        try:
            yield from self.stats_cache.stats_many(store, names, bins=bins, progress=progress)
        finally:
            self.stats_cache.flush(store, bins)
        if progress:
            progress(len(names), len(names), "")

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def open_model(spec: str | None = None, *, revision: str | None = None, trust_remote_code: bool = False,
               headers: bool = False) -> OpenedModel:
    """Open MODEL (hub id, folder, .safetensors file, config.json, or None for the demo model) lazily.

    headers=True (the `summary` and `stats` commands): when config.json and the stored names show that
    transformers' loading rules would change nothing (`provisional_info.structure_from_headers`), the
    structure is read from them without importing transformers (seconds saved); module classes other
    than the norms are then unknown, so the explorer's worker keeps the default.
    """
    source = resolve_source(spec, revision)
    store = None
    if source.has_weights:
        store = WeightStore(source.weight_files, source.pickle_files)
    tree_source = "transformers"
    if source.config_path is not None:
        structure = None
        if headers and store is not None and not source.pickle_files:
            from internals.provisional_info import structure_from_headers

            structure = structure_from_headers(source, store, trust_remote_code)
        if structure is not None:
            tree_source = "headers"
        else:
            config = load_config(source.config_path, trust_remote_code)
            model = build_meta_model(config, trust_remote_code)
            structure = structure_from_model(model, config, store)
    elif store is not None:
        structure = structure_from_names(store)
        tree_source = "headers"
    else:  # pragma: no cover - resolve_source guarantees config or weights
        raise ModelSourceError(f"{source.path} has neither a config nor weights")
    return OpenedModel(source=source, structure=structure, store=store, trust_remote_code=trust_remote_code,
                       tree_source=tree_source)
