"""kessai's error tree: one root, :class:`KessaiError`, that the CLI turns into a clear
``kessai: error: ...`` line and exit code 1 (no traceback).

Each package raises a subclass of its own (Quix Streams: one base per package;
eventsourcing: a small tree):

- :class:`ConfigError`: a ``KESSAI_*`` variable that cannot be read (``streams.config``);
- ``TopicsError``, ``CreateTopicsError`` (``streams.kafka.admin``), ``PublishError``
  (``streams.kafka.publish``), ``AsOfError`` (``streams.kafka.reader``);
- ``JournalError`` (``streams.audit``), ``RegistryError`` (``streams.security``);
- ``RestoreError`` (``streams.engine``): a worker stops on it (fail-stop), its
  supervisor restarts it;
- ``LocalKafkaError`` (``streams.devtools.localkafka``); the bench's ``BenchError``.

Bad *input* is not an error here: a record that does not decode or validate gets a
:class:`schemas.SchemaError` verdict, which the engine and the matcher turn into a
rejection record and ``kessai publish`` into a ``FILE:LINE`` message. It never reaches
the CLI's handler.
"""

from __future__ import annotations

__all__ = ["ConfigError", "KessaiError"]


class KessaiError(Exception):
    """The root of every error kessai raises on purpose: its message is for a person."""


class ConfigError(KessaiError, ValueError):
    """A setting that cannot be used (a malformed ``KESSAI_*`` variable, a bad address)."""
