"""The built-in worker operations, grouped by job; importing this package registers them all."""

from internals.worker.ops import demos, experts, forward, status, weights

__all__ = ["demos", "experts", "forward", "status", "weights"]
