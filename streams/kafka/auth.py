"""How kessai's Kafka clients authenticate: settings in, client arguments out.

Every aiokafka client kessai makes (admin, consumers, producers) takes
``**client_kwargs(settings)``; the faust app takes ``faust_credentials(settings)`` as
its ``broker_credentials``, which faust 0.15.3 turns into the same aiokafka arguments
(``faust.transport.drivers.aiokafka.credentials_to_aiokafka_auth``: a SASLCredentials
with an ssl_context becomes ``security_protocol="SASL_SSL"`` with its mechanism,
username, password and context).

``plaintext`` is the open dev profile: no arguments at all. ``sasl_ssl`` is
SASL/SCRAM-SHA-512 over TLS, checked against ``settings.kafka_ca_file`` (the secure
profile's local CA, :mod:`streams.devtools.localkafka.secure`), or the system's CAs when None.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from aiokafka.helpers import create_ssl_context

from streams.config import Settings

if TYPE_CHECKING:
    import faust

__all__ = ["SCRAM_MECHANISM", "client_kwargs", "faust_credentials"]

SCRAM_MECHANISM = "SCRAM-SHA-512"


def client_kwargs(settings: Settings | None) -> dict[str, Any]:
    """aiokafka keyword arguments for ``settings.kafka_security``: ``{}`` for plaintext
    (and for None: helpers that take optional settings connect in plaintext then).

    Raises :class:`ValueError` when ``sasl_ssl`` lacks a username or a password.
    """
    if settings is None or settings.kafka_security == "plaintext":
        return {}
    username, password = _user(settings)
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": SCRAM_MECHANISM,
        "sasl_plain_username": username,
        "sasl_plain_password": password,
        "ssl_context": _ssl_context(settings),
    }


def faust_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """faust's ``broker_credentials`` for ``settings``; None for plaintext."""
    if settings.kafka_security == "plaintext":
        return None
    import faust  # here: `kessai kafka` and the auditors' tools need no faust

    username, password = _user(settings)
    # The ssl_context is what makes faust say SASL_SSL rather than SASL_PLAINTEXT.
    return faust.SASLCredentials(
        username=username,
        password=password,
        ssl_context=_ssl_context(settings),
        mechanism=SCRAM_MECHANISM,
    )


def _user(settings: Settings) -> tuple[str, str]:
    assert settings.kafka_security == "sasl_ssl", settings.kafka_security
    if not settings.kafka_username or not settings.kafka_password:
        raise ValueError(
            "KESSAI_KAFKA_SECURITY=sasl_ssl needs a Kafka user and password: set "
            "KESSAI_KAFKA_CREDENTIALS_FILE (a JSON file with username and password; "
            "`kessai kafka up --secure` writes one per principal), or "
            "KESSAI_KAFKA_USERNAME and KESSAI_KAFKA_PASSWORD"
        )
    return settings.kafka_username, settings.kafka_password


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    # Checks the broker's certificate and that it names the host connected to.
    cafile = None if settings.kafka_ca_file is None else str(settings.kafka_ca_file)
    context: ssl.SSLContext = create_ssl_context(cafile=cafile)
    return context
