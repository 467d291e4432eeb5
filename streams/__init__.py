"""kessai (決済): settlement of tokenized JGB trades against stablecoin payments, on Kafka.

Where things live (docs/architecture.md has the map):

- the flows, each pure but for its ``agent`` and ``views``: :mod:`streams.ledger`
  (balances and two-phase locks), :mod:`streams.settlement` (the DvP saga),
  :mod:`streams.matching` (the order books); shared pure pieces: :mod:`streams.money`,
  :mod:`streams.topics`, :mod:`streams.wire`, :mod:`streams.config`, :mod:`streams.errors`;
- :mod:`streams.runtime`: the faust worker that hosts the flows (exactly-once patch,
  table restore, metrics, web);
- :mod:`streams.kafka`: Kafka clients (credentials, topic admin, the committed reader,
  ``kessai publish``);
- :mod:`streams.security` (signatures, the signer registry, the ACL policy),
  :mod:`streams.audit` (positions, verify, replay), :mod:`streams.cli` (``kessai``);
- :mod:`streams.devtools`: for development only (the local broker, the demo).

The public wire models are the sibling package :mod:`schemas`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kessai")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
