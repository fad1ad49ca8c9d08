"""Calling an offloaded module many times while its weights are brought to the device once.

accelerate's offload hook copies an offloaded module's weights to its execution device before every call and
drops them after it. The logit lens calls the final norm and the LM head once per layer, so with an offloaded
head the [vocab, hidden] matrix crossed the bus once per layer (28 times for the reference model).
`loaded_once` loads the weights with accelerate's own `align_module_device`, then runs the module's own
forward (the one the hook wraps) without the per-call copy: the module is the real one, only the copy goes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

ModuleCall = Callable[[torch.Tensor], torch.Tensor]


def is_offloaded(module: nn.Module) -> bool:
    """Whether accelerate keeps `module`'s weights off its execution device between calls."""
    if not hasattr(module, "_hf_hook"):
        return False
    from accelerate.utils import has_offloaded_params

    return bool(has_offloaded_params(module))


@contextmanager
def loaded_once(module: nn.Module) -> Iterator[ModuleCall]:
    """A callable that runs `module` on one tensor; an offloaded module's weights stay on its execution device
    for the whole context (loaded on entry, released on exit). A module that is not offloaded is itself."""
    if not is_offloaded(module):
        yield module
        return
    from accelerate.utils import align_module_device

    hook: Any = getattr(module, "_hf_hook")  # noqa: B009 - set by accelerate, unknown to nn.Module's typing
    device: torch.device = hook.execution_device
    forward: ModuleCall = getattr(module, "_old_forward")  # noqa: B009 - the module's own forward, which the hook wraps

    def call(x: torch.Tensor) -> torch.Tensor:
        return forward(x.to(device))

    with align_module_device(module):
        yield call
