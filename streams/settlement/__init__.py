"""Settlement: delivery versus payment per trade, as a saga over the ledger's locks.

:mod:`~streams.settlement.saga` is the DvP saga of one trade;
:mod:`~streams.settlement.messages` what travels to the sagas;
:mod:`~streams.settlement.intake` and :mod:`~streams.settlement.handler` the per-record
handlers of the two agents (what ``kessai replay`` runs too). :mod:`~streams.settlement.agent`
and :mod:`~streams.settlement.views` are the thin faust side; everything else is pure.
"""
