"""Mixture-of-experts weights: exact statistics of fused expert parameters, per expert, and router summaries.

Routing on a prompt (which experts each token goes to) needs a forward pass and lives in
`internals.inference.routing`.
"""
