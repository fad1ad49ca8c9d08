"""The built-in worker operations, grouped by job; importing this package registers them all."""

from internals.worker.ops import causes, chat_template, demos, diff, experts, forward, status, weights

__all__ = ["causes", "chat_template", "demos", "diff", "experts", "forward", "status", "weights"]
