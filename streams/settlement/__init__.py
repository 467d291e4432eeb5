"""Settlement: delivery versus payment per trade, as a saga over the ledger's locks.

:mod:`streams.settlement.saga` is the pure saga (no faust, no Kafka);
:mod:`tests.support.simulation` runs the ledger and the saga together in memory,
with the message routing the agents do over Kafka, for property tests and replay.
"""
