"""A single-node Apache Kafka broker for development and tests, run from Maven jars.

kessai's flows need a real broker with working transactions. This package fetches the
official Kafka jars (``KESSAI_KAFKA_VERSION``, default 4.4.0) with Maven (the packaged
``pom.xml``), writes a one-node KRaft configuration (broker and controller in one JVM)
under ``<state_dir>/kafka``, formats its storage once, and starts it detached so that
it outlives the command that started it. Tests and engineers share that one broker:
:func:`up` is idempotent and cheap when it already runs. When ``KESSAI_BOOTSTRAP``
names a cluster that is not on this machine, nothing is started; :func:`up` only
waits for that cluster to answer.

Layout under ``<state_dir>/kafka``: ``libs/`` (jars, with the pom's hash beside them),
``pom.xml`` (the copy Maven runs on), ``data/`` (log dirs and KRaft metadata),
``logs/server.log``, ``server.properties``, ``log4j.properties``, ``kafka.pid``.

Two profiles, chosen by ``settings.kafka_security``. ``plaintext`` is the open
development broker above: no authentication, no ACLs. ``sasl_ssl`` is the secure
profile (``kessai kafka up --secure``): the same broker with SASL/SCRAM-SHA-512 over
TLS and Kafka ACLs (:mod:`streams.devtools.localkafka.secure`), under ``<state_dir>/kafka-secure``
on port 9192 by default, so that both can run side by side; it uses the dev
profile's jars. kessai manages it as the admin principal, whatever user the settings
name.

The public API is re-exported here; each piece lives in a module of its own:

- ``broker``: :func:`up`, :func:`down`, :func:`status`, :func:`reset`,
  :func:`up_private` and the :class:`Status` they report: the steps below, in order;
- ``cluster``: a local cluster of several brokers and a controller instead
  (``kessai kafka up --brokers 3``), and the node kills the crash tests need;
- ``profiles``: which profile settings name, and the secure one's steps around a start
  (its files, its ACLs, whom the probes connect as, a principal's settings);
- ``secure``: the secure profile's files: certificates, SCRAM passwords, env files;
- ``jars``: the Kafka jars, fetched once with Maven (:func:`kafka_version`);
- ``jvm``: finding Java 17+, the heap, and the java command lines;
- ``config``: ``server.properties`` and the log4j files, rendered from settings;
- ``storage``: formatting the KRaft storage once;
- ``process``: the JVM started detached, its pid, the lock, waiting until it answers;
- ``probes``: ``KESSAI_BOOTSTRAP`` parsing, TCP and metadata probes, :func:`run_sync`;
- ``layout``: where each file lives (``Paths``); ``limits``: every timeout;
  ``errors``: :class:`LocalKafkaError` and its kinds;
- ``compose``: the same broker for deploy/compose.yaml (``kessai kafka compose-secrets``);
- ``__main__``: ``python -m streams.devtools.localkafka up|down|status|reset``.
"""

from __future__ import annotations

from streams.devtools.localkafka.broker import Status, down, reset, status, up, up_private
from streams.devtools.localkafka.config import NODE_ID, base_properties
from streams.devtools.localkafka.errors import BrokerError, LocalKafkaError, MissingToolError
from streams.devtools.localkafka.jars import KAFKA_VERSION, kafka_version
from streams.devtools.localkafka.jvm import java_argfile
from streams.devtools.localkafka.probes import run_sync
from streams.devtools.localkafka.profiles import env_file, principal_settings, secure_profile
from streams.devtools.processes import free_port

__all__ = [
    "KAFKA_VERSION",
    "NODE_ID",
    "BrokerError",
    "LocalKafkaError",
    "MissingToolError",
    "Status",
    "base_properties",
    "down",
    "env_file",
    "free_port",
    "java_argfile",
    "kafka_version",
    "principal_settings",
    "reset",
    "run_sync",
    "secure_profile",
    "status",
    "up",
    "up_private",
]
