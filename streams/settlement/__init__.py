"""Settlement: delivery versus payment per trade, as a saga over the ledger's locks.

:mod:`streams.settlement.core` is the pure saga (no faust, no Kafka);
:mod:`streams.settlement.engine` runs the ledger and the saga together in memory,
with the message routing the agents do over Kafka, for property tests and replay.
"""
