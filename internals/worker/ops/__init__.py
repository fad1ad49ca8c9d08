"""The built-in worker operations, grouped by job; importing this package registers them all."""

from internals.worker.ops import causes, demos, forward, status, weights

__all__ = ["causes", "demos", "forward", "status", "weights"]
