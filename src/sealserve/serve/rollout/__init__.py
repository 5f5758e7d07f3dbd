"""Safe rollout inside the server: a candidate version per model, shadowed or canaried, compared with production.

The choice is made in the data plane (a router and a hook it calls), so every protocol gets it; docs/rollout.md.
"""
