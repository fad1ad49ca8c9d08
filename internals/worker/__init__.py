"""The model worker: a long-lived process that owns the model and answers the explorer over a Unix socket.

Torch-free at import: `client`, `protocol` and `spawn` are used by the explorer; `service` and `server`
run inside the worker process.
"""
