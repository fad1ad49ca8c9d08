"""The built-in worker operations, grouped by job; importing this package registers them all."""

from internals.worker.ops import demos, diff, forward, status, weights

__all__ = ["demos", "diff", "forward", "status", "weights"]
