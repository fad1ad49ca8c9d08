"""Keep the objects a long-lived process made at startup out of Python's full garbage collections.

A full collection walks every object the collector tracks. With numba's registries loaded that is about
100,000 objects, 45-55 ms per collection on the development VM (with torch and transformers, several times
more), and a whole-model statistics pass triggers several: its survivors (each tensor's counts, statistics,
histogram lists) count toward the next full collection. In the explorer's worker that was a third of the
whole-model `cross_layer` answer on the 28-layer checkpoint. Objects made while a process starts (modules,
registries, compiled kernels) live as long as the process, so `freeze_long_lived` moves them to the
collector's permanent generation (`gc.freeze`, as Python's documentation suggests for servers); later full
collections walk only what came after. Only a process that owns its startup calls it (the worker, after it
loads the kernels and after it imports torch), never library code, which would freeze its caller's garbage
too. (The one-shot `stats` command gained nothing measurable from it: it ends before many collections.)
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Move every object tracked now to the permanent generation (full collections no longer walk them)."""
    gc.freeze()
