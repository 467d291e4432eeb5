"""Auditors' tools: positions as of any moment, chain verification, full replay.

- :mod:`streams.kafka.reader`: bulk read_committed reads of a topic, each partition
  up to a cut-off (``--as-of`` a time or offsets), in batches, with progress.
- :mod:`streams.audit.fold`: the ledger journal folded into positions, with
  its seq, balance and hash-chain checks (pure; orjson and integers, no pydantic).

Nothing here writes to Kafka.
"""
