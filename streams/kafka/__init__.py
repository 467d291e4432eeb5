"""Kafka client plumbing, one way to do each thing.

- :mod:`~streams.kafka.auth`: settings in, client credentials out;
- :mod:`~streams.kafka.admin`: creating, describing and deleting topics;
- :mod:`~streams.kafka.reader`: every read of committed records (``read_committed``,
  ``Tail``, the auditors' bulk reads);
- :mod:`~streams.kafka.publish`: ``kessai publish``, records onto an input topic.
"""
