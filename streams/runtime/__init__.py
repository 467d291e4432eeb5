"""The runtime that hosts the flows: one faust worker, the batch loops as its tasks.

- :mod:`~streams.runtime.main`: what ``kessai worker`` does (topics, then faust);
- :mod:`~streams.runtime.app`: the faust app, the engine and the matcher wired onto it;
- :mod:`~streams.runtime.batches`: what the engine's and the matcher's loops share
  (fail-stop, membership, the outbox, commit times, rejections), and
  :mod:`~streams.runtime.leader`: the assignor that gives one worker every input;
- :mod:`~streams.runtime.metrics`: Prometheus metrics and ``/health``;
  :mod:`~streams.runtime.livesums`: the engine's running sums for them;
  :mod:`~streams.runtime.web`: the dashboard.

Nothing in a flow's pure code imports this package (tests/unit/test_house.py checks).
"""
