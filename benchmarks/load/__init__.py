"""A load, soak and chaos harness for a hardened ASGI service (run: benchmarks/load/run.py).

Modules: ``run`` (the command line), ``profiles`` (sustained, spike, soak, stress),
``chaos`` (Redis killed/frozen, network faults, rolling restart, log disk full,
hanging check), ``harness`` (settings, traffic, sampling), ``client`` (the
constant-rate HTTP client), ``faultproxy`` (TCP faults to Redis), ``balancer``
(a readiness-honouring load balancer), ``procs`` (processes and /proc),
``stats`` (percentiles, slopes, knee, verdicts), ``report`` (markdown, JSON, PNG),
``app`` (the demo app under harden(), with the two injectable faults).
"""
