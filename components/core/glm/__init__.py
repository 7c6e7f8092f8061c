"""Exact federated generalised linear models: per-party sums, the coordinator's Newton step, the summary.

Each party returns additive sums of its own rows at the coefficients it is sent (``sums``); the
coordinator adds them and takes one Newton-Raphson (IRLS) step (``newton``), so the fit equals the
fit on the pooled rows. ``disclosure`` is what a party checks before any sum leaves it; ``summary``
is what a statistician reads; ``model`` serves the coefficients as a linear model.
Import from the submodules: this package imports nothing, so loading the config stays light.
"""
