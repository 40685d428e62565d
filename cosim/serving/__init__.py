"""The serving engine: discrete-event simulation of instances, schedulers and KV caches.

Entry points: :func:`cosim.serving.simulation.run_simulation` (a config to results) and
:mod:`cosim.serving.deployments` (chunked, pd, afd, pd_afd). See docs/serving.md.
"""
