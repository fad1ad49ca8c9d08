"""The built-in worker operations, grouped by job; importing this package registers them all."""

from internals.worker.ops import demos, forward, spectrum, status, weights

__all__ = ["demos", "forward", "spectrum", "status", "weights"]
