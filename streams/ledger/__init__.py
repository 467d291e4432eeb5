"""The cash and custody ledger: balances per account and asset, one flow.

:mod:`streams.ledger.domain` is the pure domain (no faust, no Kafka);
:mod:`streams.ledger.agent` is the thin agent that feeds it from ``payments`` and
``custody`` and emits ``ledger-events``.
"""
