"""Development tools, not the product: nothing here runs in a production worker.

- :mod:`~streams.devtools.localkafka`: a local Kafka broker from Maven jars
  (``kessai kafka``; the secure profile; deploy/compose.yaml's secrets);
- :mod:`~streams.devtools.demo`: the story behind ``make run`` (``kessai demo``);
- :mod:`~streams.devtools.processes`: starting, watching and stopping workers (the
  demo, the benchmarks and the tests all use it).

It ships in the wheel because ``kessai kafka up`` and ``kessai demo`` work from an
install; the benchmarks do not (bench/, docs/adr/0012-benchmarks-outside-the-wheel.md).
"""
