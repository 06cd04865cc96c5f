"""``dynpricing bench``: throughput, latency, decision core and state size, in one run.

Every figure comes from the same run on the same machine, so the ratios
(engine / pass-through relay, ours / MABWiser) hold even on a noisy host.
See ``docs/benchmarks.md`` for the latest table and how to reproduce it.
"""
