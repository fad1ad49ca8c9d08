"""Load a model and its tokenizer for forward passes: the one expensive step of the worker.

Everything is transformers' own loading: `from_pretrained` onto one device, or accelerate's big-model
inference (`device_map="auto"`, `max_memory`, disk offload) when asked. Attention is loaded as transformers
chooses (sdpa where the architecture supports it): memory-efficient, never a [heads, T, T] map per layer. The
attention view computes the one layer it shows on the side (`internals.inference.attention`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from internals.errors import UserError, WeightsRequiredError
from internals.inference.errors import translate_oom
from internals.sources import ModelSource

Progress = Callable[[float, str], None]

_LOAD_OOM = "out of GPU memory while loading the model: try --device auto (offloads to CPU and disk) or a smaller --dtype"
OFFLOAD_PREFIX = "llm-internals-offload-"
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(GIB|MIB|KIB|GB|MB|KB)$", re.IGNORECASE)
# Share of the progress bar given to the weights (the rest: tokenizer, building the module tree, dispatch).
_WEIGHTS_START, _WEIGHTS_END = 0.1, 0.95


@dataclass
class Loaded:
    """A model ready for forward passes, with its tokenizer. `device` is where input ids go."""

    model: Any  # a transformers PreTrainedModel (causal LM), in eval mode
    tokenizer: Any  # a transformers tokenizer
    device: torch.device
    dtype: torch.dtype
    source: ModelSource | None = None
    offload_dir: Path | None = None  # accelerate's disk offload folder, removed by close()

    def close(self) -> None:
        """Drop the model and remove the offload folder (the worker calls this before loading another model)."""
        self.model = None
        if self.offload_dir is not None:
            shutil.rmtree(self.offload_dir, ignore_errors=True)
            self.offload_dir = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def parse_max_memory(spec: str) -> dict[int | str, str | int]:
    """Parse `--max-memory` ("0=20GiB,cpu=64GiB") into accelerate's max_memory dict ({0: "20GiB", "cpu": "64GiB"}).

    Keys: a GPU index (`0`, `cuda:0`), `cpu`, `mps` or `disk`; values: accelerate's sizes (GiB, MiB, KiB, GB,
    MB, KB) or a byte count. Checked here so that a typo is a one-line error, not accelerate's traceback.
    """
    result: dict[int | str, str | int] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key or not value:
            raise UserError(f"--max-memory entry {item!r} is not DEVICE=SIZE: write e.g. 0=20GiB,cpu=64GiB")
        result[_memory_key(key)] = _memory_value(value)
    if not result:
        raise UserError("--max-memory is empty: write e.g. 0=20GiB,cpu=64GiB")
    return result


def _memory_key(key: str) -> int | str:
    lowered = key.lower()
    if lowered.startswith("cuda:"):
        lowered = lowered[5:]
    if lowered.isdigit():
        return int(lowered)
    if lowered in ("cpu", "mps", "disk"):
        return lowered
    raise UserError(f"--max-memory device {key!r} is not a GPU index, cpu, mps or disk")


def _memory_value(value: str) -> str | int:
    if value.isdigit():
        return int(value)
    if not _SIZE.match(value):
        raise UserError(f"--max-memory size {value!r} is not a size like 20GiB, 512MiB or 8GB")
    return value.replace(" ", "")


def load_for_inference(source: ModelSource, device: str | torch.device | None = None,
                       dtype: str | torch.dtype | None = None, max_memory: str | dict | None = None,
                       trust_remote_code: bool = False, progress: Progress | None = None) -> Loaded:
    """Load `source` (a folder or hub snapshot with config, safetensors weights and a tokenizer) for inference.

    device: None picks CUDA when available else CPU; "cpu", "cuda", "cuda:1"; "auto" (or any `max_memory`)
    uses accelerate's big-model inference, spreading layers over GPUs, CPU and a temporary disk folder.
    dtype: None means bfloat16 on CUDA (float16 where bf16 is unsupported) and float32 on CPU.
    progress(fraction, message): called with the tokenizer, the module tree, then every ~1% of the weights as
    transformers' loader realises them (it iterates tensors, not shards, so the message counts tensors),
    and 1.0 when ready. It hooks transformers' own progress bar (`set_tqdm_hook`); on a transformers without
    that hook only the begin and end are reported.
    """
    report = progress or (lambda fraction, message: None)
    folder = _model_folder(source)
    report(0.0, "loading the tokenizer")
    tokenizer = load_tokenizer(source, trust_remote_code)
    memory = parse_max_memory(max_memory) if isinstance(max_memory, str) else max_memory
    if device == "auto" and memory is None:
        device = _one_gpu_that_fits(source)  # spread over several devices only when one is not enough
    auto = device == "auto" or memory is not None
    target = None if auto else _pick_device(device)
    torch_dtype = _pick_dtype(dtype, target, memory)
    kwargs: dict[str, Any] = dict(dtype=torch_dtype, trust_remote_code=trust_remote_code)
    offload_dir = None
    if auto:
        remove_stale_offload_folders()
        offload_dir = Path(tempfile.mkdtemp(prefix=f"{OFFLOAD_PREFIX}{os.getpid()}-"))
        kwargs.update(device_map="auto", offload_folder=str(offload_dir))
        if memory is not None:
            kwargs["max_memory"] = memory
    elif target is not None and target.type != "cpu":
        kwargs["device_map"] = str(target)  # load straight onto the GPU, without a full copy in CPU memory
    report(0.05, f"building the model ({_dtype_name(torch_dtype)})")
    try:
        model = _from_pretrained(folder, kwargs, report)
    except BaseException:
        if offload_dir is not None:
            shutil.rmtree(offload_dir, ignore_errors=True)
        raise
    model.eval()
    from internals.inference.model_parts import input_device

    loaded = Loaded(model=model, tokenizer=tokenizer, device=input_device(model), dtype=torch_dtype,
                    source=source, offload_dir=offload_dir)
    report(1.0, f"ready on {'several devices' if auto else loaded.device} ({_dtype_name(torch_dtype)})")
    return loaded


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    """The source's tokenizer, or a UserError saying it has none (the views all start from text)."""
    name = source.display_name
    if source.tokenizer_dir is None:
        raise UserError(f"{name} has no tokenizer: its folder needs tokenizer.json or tokenizer_config.json "
                        "(copy them from the original model)")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(source.tokenizer_dir), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError) as exc:
        raise UserError(f"{name} has no tokenizer: loading it from {source.tokenizer_dir} failed ({exc})") from exc


def _model_folder(source: ModelSource) -> Path:
    if source.config_path is None:
        raise UserError(f"{source.display_name} has no config.json: forward passes need a full model folder")
    if not source.has_weights:
        raise WeightsRequiredError(f"{source.display_name} has no weights: forward passes need the safetensors files")
    return source.config_path.parent


def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but torch sees no CUDA GPU here: use --device cpu")
    return chosen


def _pick_dtype(dtype: str | torch.dtype | None, target: torch.device | None,
                memory: dict[int | str, str | int] | None = None) -> torch.dtype:
    """The asked dtype, else bfloat16 on a GPU that supports it and float32 everywhere else.

    Never float16 by default: models trained in bf16 (Qwen2 among them) overflow to inf/NaN in fp16, so a
    pre-Ampere GPU gets float32. A `--max-memory` that names no GPU means the CPU (and disk): float32 too.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        from internals.torch_dtypes import parse_dtype

        return parse_dtype(dtype)
    if target is not None:
        on_gpu = target.type == "cuda"
    elif memory is not None:
        on_gpu = torch.cuda.is_available() and any(isinstance(key, int) for key in memory)
    else:
        on_gpu = torch.cuda.is_available()
    if on_gpu and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _one_gpu_that_fits(source: ModelSource) -> str:
    """For `--device auto` without `--max-memory`: the GPU with the most free memory when the weights (in
    bf16) fit in 80% of it, so a model that fits one GPU is not spread over every visible one; else "auto"."""
    if not torch.cuda.is_available():
        return "cpu"
    need = _weights_bytes(source)
    free = [(torch.cuda.mem_get_info(i)[0], i) for i in range(torch.cuda.device_count())]
    best_free, best = max(free)
    return f"cuda:{best}" if need and need < 0.8 * best_free else "auto"


def _weights_bytes(source: ModelSource) -> int:
    folder = source.config_path.parent if source.config_path is not None else None
    if folder is None:
        return 0
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def remove_stale_offload_folders() -> list[Path]:
    """Remove the offload folders of workers that died without cleaning up (SIGKILL, power loss): with disk
    offload each holds tens of GB. A folder is stale when the pid in its name is no longer running."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{OFFLOAD_PREFIX}*"):
        pid_text = folder.name[len(OFFLOAD_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or not folder.is_dir() or folder.owner() != _user_name():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except PermissionError:
            pass
    return removed


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _from_pretrained(folder: Path, kwargs: dict[str, Any], report: Progress):
    from transformers import AutoModelForCausalLM

    with translate_oom(_LOAD_OOM), _weights_progress(report):
        try:
            return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        except (OSError, ValueError) as exc:
            if "out of memory" in str(exc).lower():
                raise
            raise UserError(f"cannot load {folder} for inference: {str(exc).strip().splitlines()[0]}") from exc


@contextmanager
def _weights_progress(report: Progress) -> Iterator[None]:
    """Route transformers' "Loading weights" progress bar to `report`, and silence its other bars."""
    from transformers.utils import logging as hf_logging

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if set_hook is None:
        yield
        return

    def hook(factory, args, kwargs):
        if kwargs.get("desc") == "Loading weights" and args:
            return _ReportingIterable(args[0], report)
        return hf_logging.EmptyTqdm(*args, **kwargs)

    previous = set_hook(hook)
    try:
        yield
    finally:
        set_hook(previous)


class _ReportingIterable:
    """Stands in for tqdm around the loader's tensor loop: yields the items and reports every ~1%."""

    def __init__(self, iterable: Iterable, report: Progress) -> None:
        self._iterable = iterable
        self._report = report
        try:
            self._total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            self._total = 0

    def __iter__(self) -> Iterator:
        total = self._total
        step = max(1, total // 100)
        for done, item in enumerate(self._iterable):
            if total and done % step == 0:
                fraction = _WEIGHTS_START + (_WEIGHTS_END - _WEIGHTS_START) * done / total
                self._report(fraction, f"loading weights: tensor {done + 1} of {total}")
            yield item
        if total:
            self._report(_WEIGHTS_END, f"loaded {total} tensors")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __getattr__(self, name: str):  # update(), close(), set_postfix()...: nothing to draw
        return lambda *args, **kwargs: None
