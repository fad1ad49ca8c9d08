"""All stored tensors of a model, by their on-disk names, read lazily.

`WeightStore` indexes every tensor of every shard from the headers alone. `raw(name)` gives the tensor's
bytes as a zero-copy view of a memory map; `tensor(name)` wraps them as a torch tensor without copying.
Legacy pickle checkpoints are only ever opened with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from internals.dtypes import code_of_torch_dtype
from internals.errors import ModelSourceError, WeightsRequiredError
from internals.safetensors_file import SafetensorsFile, TensorEntry

if TYPE_CHECKING:
    import torch


class WeightStore:
    """Index of a model's stored tensors across all of its files."""

    def __init__(self, safetensors_files: list[Path], pickle_files: list[Path] | None = None) -> None:
        self._files: dict[Path, SafetensorsFile] = {}
        self.entries: dict[str, TensorEntry] = {}
        self._pickled: dict[str, torch.Tensor] = {}
        for path in safetensors_files:
            sf = SafetensorsFile(path)
            self._files[sf.path] = sf
            for name, entry in sf.entries.items():
                if name in self.entries:
                    raise ModelSourceError(
                        f"tensor {name!r} is stored twice ({self.entries[name].file.name} and {path.name}): "
                        "the shards are inconsistent"
                    )
                self.entries[name] = entry
        for path in pickle_files or []:
            self._load_pickle(path)

    def _load_pickle(self, path: Path) -> None:
        import pickle

        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
            raise ModelSourceError(
                f"refusing to unpickle {path.name}: it does not load with torch.load(weights_only=True) "
                f"({str(exc).splitlines()[0][:80]}); convert it to safetensors with trusted code first"
            ) from None
        except OSError as exc:
            raise ModelSourceError(f"cannot read {path}: {exc}") from None
        if not isinstance(state, dict):
            raise ModelSourceError(f"{path.name} does not hold a state dict of tensors")
        for name, tensor in state.items():
            if not isinstance(tensor, torch.Tensor):
                continue
            code = code_of_torch_dtype(tensor.dtype)
            if code is None:
                raise ModelSourceError(f"{path.name}: tensor {name!r} has dtype {tensor.dtype}, which llm-internals cannot read")
            self._pickled[name] = tensor
            nbytes = tensor.numel() * tensor.element_size()
            self.entries[name] = TensorEntry(name, path, code, tuple(tensor.shape), 0, nbytes)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def names(self) -> list[str]:
        return list(self.entries)

    def __iter__(self) -> Iterator[TensorEntry]:
        return iter(self.entries.values())

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries.values())

    def entry(self, name: str) -> TensorEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise ModelSourceError(f"no stored tensor named {name!r}: `llm-internals stats MODEL --json` lists them") from None

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes (little-endian) as a read-only uint8 array; no copy for safetensors."""
        entry = self.entry(name)
        if name in self._pickled:
            import torch

            t = self._pickled[name].contiguous()
            return t.view(torch.uint8).reshape(-1).numpy() if t.numel() else np.zeros(0, np.uint8)
        return self._files[entry.file].view(entry)

    def same_bytes(self, a: str, b: str) -> bool:
        """Whether two names are stored at the very same bytes (same safetensors file and byte range)."""
        ea, eb = self.entry(a), self.entry(b)
        if a in self._pickled or b in self._pickled:
            return a == b
        return (ea.file, ea.start, ea.end) == (eb.file, eb.start, eb.end)

    def tensor(self, name: str):  # -> torch.Tensor
        """The tensor as a torch tensor sharing the memory map (read-only: do not modify it)."""
        import warnings

        import torch

        from internals.torch_dtypes import torch_dtype_of_code

        entry = self.entry(name)
        if name in self._pickled:
            return self._pickled[name]
        dtype = torch_dtype_of_code(entry.dtype)
        raw = self.raw(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "the given buffer is not writable": we never write to it
            flat = torch.frombuffer(raw, dtype=torch.uint8) if raw.size else torch.zeros(0, dtype=torch.uint8)
        return flat.view(dtype).reshape(entry.shape)

    def close(self) -> None:
        for f in self._files.values():
            f.close()


def require_weights(store: WeightStore | None, what: str) -> WeightStore:
    """Return the store, or raise the error that says a bare config has no values."""
    if store is None or not len(store):
        raise WeightsRequiredError(
            f"{what} needs tensor values, but this model has no weights (a bare config): pass a folder or .safetensors file"
        )
    return store
