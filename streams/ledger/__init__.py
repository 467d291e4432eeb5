"""The cash and custody ledger: balances per account and asset, one flow.

:mod:`~streams.ledger.domain` keeps the rules (balances, two-phase locks, postings);
:mod:`~streams.ledger.messages` what travels to and from it;
:mod:`~streams.ledger.handler` the per-record handler the agent and ``kessai replay``
both run; :mod:`~streams.ledger.intake` turns ``payments`` and ``custody`` records into
moves; :mod:`~streams.ledger.journal` chains ``ledger-events`` into a hash chain per
account. :mod:`~streams.ledger.agent` and :mod:`~streams.ledger.views` are the thin
faust side; everything else is pure.
"""
