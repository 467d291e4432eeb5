"""Matching: kessai's own order books, one flow.

:mod:`~streams.matching.book` is one book (price-time priority), the
:class:`~streams.matching.matcher.Matcher` every book of a worker's partitions kept as
one row per order, :mod:`~streams.matching.handler` the per-record handler the agent and
``kessai replay`` both run, :mod:`~streams.matching.depth` the depth ``kessai book``
prints, and :mod:`~streams.matching.agent` the thin faust agent.
"""
