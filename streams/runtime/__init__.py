"""The runtime that hosts the flows: one faust worker, exactly once.

- :mod:`~streams.runtime.main`: what ``kessai worker`` does (topics, then faust);
- :mod:`~streams.runtime.app`: the faust app, each flow's agents wired onto it;
- :mod:`~streams.runtime.eos`: kessai's patch over faust-streaming's transactions
  (docs/exactly-once.md), and :mod:`~streams.runtime.restore`: tables rebuilt from
  their changelogs with a consumer of kessai's own;
- :mod:`~streams.runtime.metrics`: Prometheus metrics and ``/health``;
  :mod:`~streams.runtime.web`: the dashboard;
- :mod:`~streams.runtime.agentkit`: what every agent needs (raw topics, rejections, fail-stop).

Nothing in a flow's pure code imports this package (tests/unit/test_house.py checks).
"""
