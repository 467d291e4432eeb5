"""Auditors' tools: positions as of any moment, chain verification, full replay.

- :mod:`~streams.audit.journal`: ``kessai positions`` and ``kessai verify``, the ledger
  journal read back (in reader processes) and folded by :mod:`~streams.audit.fold`
  (pure; its seq, balance and hash-chain checks);
- :mod:`~streams.audit.positions`: positions, their rendering, and the reference fold;
- :mod:`~streams.audit.evidence`: ``kessai verify-settlements``;
- :mod:`~streams.audit.replay`: ``kessai replay``, the flows' handlers re-run;
- :mod:`~streams.audit.books`: ``kessai book``'s data, the matcher's committed books.

Nothing here writes to Kafka.
"""
