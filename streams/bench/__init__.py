"""``kessai bench``: measure kessai against what the broker and client can carry (issue 7).

- :mod:`~streams.bench.trades`: realistic ``trades`` records, the real payload size;
- :mod:`~streams.bench.loadgen`: publishes them at a fixed rate or full speed;
- :mod:`~streams.bench.passthrough`: the ceiling, a consume -> produce loop that does
  nothing, at-least-once or transactional;
- :mod:`~streams.bench.variants`: what is measured (the extension point for the
  settlement pipeline under at_least_once / exactly_once, and matching);
- :mod:`~streams.bench.observer`: latency, publish -> visible to read_committed;
- :mod:`~streams.bench.procs`: child processes, with their CPU time and peak RSS;
- :mod:`~streams.bench.runner`: one run, every variant side by side;
- :mod:`~streams.bench.stats`: percentiles and ratios (pure);
- :mod:`~streams.bench.report`: the machine, JSON and Markdown under ``bench/results/``;
- :mod:`~streams.bench.command`: what ``kessai bench`` runs (broker up, run, print).

A benchmark is never a timed test: CI runs a tiny one that checks the harness works.
"""
