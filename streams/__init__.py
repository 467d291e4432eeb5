"""kessai (決済): the streaming half of the settlement pipeline.

Faust agents, the exactly-once patch (:mod:`streams.eos`), the local broker
(:mod:`streams.localkafka`), topic creation and the ``kessai`` command line.
The event models live in the sibling package :mod:`schemas`.
"""
