"""The residual stream in one forward pass: its norm, its massive activations and the heads' attention sinks.

- residual_norm[entry][position]: the L2 norm of the residual stream at the embedding ("embed", the input of
  layer 0) and after every decoder layer (before the final norm).
- massive activations (Sun et al. 2024, "Massive activations in large language models"): a few residual
  stream values, at fixed channels and usually at the first token or a delimiter, that are orders of
  magnitude larger than the rest and stay nearly constant across the middle layers. `massive` lists the 20
  largest |values| of the whole residual stream (every layer, position and channel), each with its ratio to
  its layer's median |value|. The rule that flags one as massive is the paper's: |value| >= 100 and >= 1000
  times the median |value| of the residual stream at that layer (`min_value`, `ratio`). Tiny models rarely
  reach 100: the ratio is the part that scales, so pass a smaller `min_value` to look for them there.
  `massive_channels` groups the flagged values by channel, with the layers and positions where each stays
  massive (a channel massive at the same positions over many layers is the paper's signature).
- sink_share[layer][head]: the mean, over query positions >= 1, of the attention weight on key position 0
  (the "attention sink"); needs eager attention, which computes every layer's map anyway: each is read
  by a hook on the real attention module and dropped with its layer, so nothing more is materialised.
All from one forward pass of the decoder (the LM head is not run); the extra work per layer is a norm, a
median and a top-k of the layer's [T, hidden] output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from internals.errors import UserError
from internals.inference.attention import can_stop_early, eager_attention
from internals.inference.capture import hooks
from internals.inference.errors import translate_oom
from internals.inference.model_parts import attention_module, decoder_layers, first_tensor, prompt_tensor
from internals.inference.patching import label
from internals.inference.result_types import ActivationsResult, MassiveActivation, MassiveChannel

Progress = Callable[[float, str], None]
Check = Callable[[], None]
TOP = 20
_MAX_FLAGGED = 10_000  # flagged values kept per layer (a broken model could flag millions)


def residual_activations(loaded: Any, prompt_ids: Sequence[int], ratio: float = 1000.0, min_value: float = 100.0,
                         progress: Progress | None = None, check: Check | None = None) -> ActivationsResult:
    """Residual norms, the largest activations and the attention-sink share of every head (module docstring)."""
    model, tokenizer = loaded.model, loaded.tokenizer
    ids = prompt_tensor(model, prompt_ids)
    if ratio <= 0 or min_value < 0:
        raise UserError(f"the massive-activation rule needs ratio > 0 and min_value >= 0 (got {ratio}, {min_value})")
    layers = decoder_layers(model)
    names: list[str | int] = ["embed", *range(len(layers))]
    scan = _ResidualScan(len(names), ratio, min_value)
    sinks: list[torch.Tensor | None] = [None] * len(layers)
    report = progress or (lambda fraction, message: None)
    stoppable = can_stop_early(model)

    def embed_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        scan.add(0, args[0] if args else kwargs["hidden_states"])

    def layer_hook(index: int):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            scan.add(index + 1, first_tensor(output))
            report((index + 1) / len(layers), f"layer {index + 1} of {len(layers)}")
            if check is not None and stoppable:  # never abort mid-pass with offloaded weights
                check()
        return hook

    def sink_hook(index: int):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            weights = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
            if not isinstance(weights, torch.Tensor):
                raise UserError(f"{type(module).__name__} returned no attention weights: load the model with eager attention")
            sinks[index] = weights[0, :, 1:, 0].float().mean(dim=-1)  # [heads]; NaN when T == 1
        return hook

    handles = [layers[0].register_forward_pre_hook(embed_hook, with_kwargs=True)]
    handles += [layer.register_forward_hook(layer_hook(i)) for i, layer in enumerate(layers)]
    handles += [attention_module(layer).register_forward_hook(sink_hook(i)) for i, layer in enumerate(layers)]
    if check is not None:
        check()
    report(0.0, "forward pass")
    with translate_oom(), torch.no_grad(), hooks(handles), eager_attention(model):
        getattr(model, "base_model", model)(input_ids=ids, use_cache=False)
    if any(s is None for s in sinks):
        raise RuntimeError("an attention layer did not run: cannot read the attention sinks")
    token_ids = [int(i) for i in prompt_ids]
    tokens = [label(tokenizer, i) for i in token_ids]
    massive, channels = scan.finish(names, tokens)
    return ActivationsResult(
        tokens=tokens, token_ids=token_ids, layers=names, residual_norm=scan.norms(),
        massive=massive, massive_channels=channels,
        sink_share=torch.stack([s.cpu() for s in sinks]).numpy().astype(np.float32),  # type: ignore[union-attr]
        rule=f"|value| >= {min_value:g} and >= {ratio:g} x the layer's median |value|")


class _ResidualScan:
    """Per residual-stream entry: the norms, the TOP largest |values| and the values that meet the rule."""

    def __init__(self, entries: int, ratio: float, min_value: float) -> None:
        self.ratio, self.min_value = ratio, min_value
        self._norms: list[torch.Tensor | None] = [None] * entries
        self._top: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (values, flat indices, median), per entry
        self._entry: list[int] = []
        self._flagged: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (entry, positions, channels, |values|)
        self._hidden = 0

    def add(self, entry: int, hidden: torch.Tensor) -> None:
        h = hidden[0].detach().float()  # [T, hidden]
        self._hidden = int(h.shape[-1])
        self._norms[entry] = h.norm(dim=-1).cpu()
        magnitude = h.abs()
        median = float(magnitude.median())
        flat = h.reshape(-1)
        top = torch.topk(magnitude.reshape(-1), min(TOP, flat.numel()))
        self._top.append((flat[top.indices].cpu(), top.indices.cpu(), median))
        self._entry.append(entry)
        hits = torch.nonzero((magnitude >= self.min_value) & (magnitude >= self.ratio * median))[:_MAX_FLAGGED].cpu()
        if len(hits):
            self._flagged.append((entry, hits[:, 0], hits[:, 1], magnitude[hits[:, 0], hits[:, 1]].cpu()))

    def norms(self) -> np.ndarray:
        return torch.stack(self._norms).numpy().astype(np.float32)  # type: ignore[arg-type]

    def finish(self, names: list[str | int], tokens: list[str]) -> tuple[list[MassiveActivation], list[MassiveChannel]]:
        candidates = []
        for entry, (values, indices, median) in zip(self._entry, self._top):
            for value, index in zip(values.tolist(), indices.tolist()):
                candidates.append((abs(value), value, entry, index // self._hidden, index % self._hidden, median))
        candidates.sort(key=lambda c: -c[0])
        massive = [MassiveActivation(value=value, layer=names[entry], position=position, channel=channel,
                                     token=tokens[position], ratio_to_median=magnitude / median if median else None,
                                     is_massive=bool(magnitude >= self.min_value and magnitude >= self.ratio * median))
                   for magnitude, value, entry, position, channel, median in candidates[:TOP]]
        by_channel: dict[int, tuple[set, set]] = {}
        peak: dict[int, float] = {}
        for entry, positions, channels, magnitudes in self._flagged:
            for position, channel, size in zip(positions.tolist(), channels.tolist(), magnitudes.tolist()):
                seen = by_channel.setdefault(channel, (set(), set()))
                seen[0].add(entry)
                seen[1].add(position)
                peak[channel] = max(peak.get(channel, 0.0), size)
        channels_out = [MassiveChannel(channel=channel, layers=[names[e] for e in sorted(entries)],
                                       positions=sorted(positions), max_abs=peak[channel])
                        for channel, (entries, positions) in by_channel.items()]
        channels_out.sort(key=lambda c: -c["max_abs"])
        return massive, channels_out
