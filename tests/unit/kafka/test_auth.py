"""streams/kafka/auth.py: settings in, aiokafka and faust client arguments out."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from cryptography.hazmat.primitives import serialization

from streams.config import Settings
from streams.devtools.localkafka import secure as kafkasecure
from streams.kafka.auth import client_kwargs, faust_credentials


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = kafkasecure.SecureFiles(tmp_path_factory.mktemp("ca"))
    kafkasecure.ensure_certificates(files)
    return files.ca


def _secure(ca_file: Path, **changes: object) -> Settings:
    fields: dict[str, object] = {
        "kafka_security": "sasl_ssl",
        "kafka_username": "venue-a",
        "kafka_password": "pw",
        "kafka_ca_file": ca_file,
        **changes,
    }
    return Settings(**fields)  # type: ignore[arg-type]


def test_plaintext_adds_nothing() -> None:
    assert client_kwargs(Settings()) == {}
    assert client_kwargs(None) == {}
    assert faust_credentials(Settings()) is None


def test_sasl_ssl_is_scram_sha_512_over_tls_checked_against_the_ca(ca_file: Path) -> None:
    kwargs = client_kwargs(_secure(ca_file))

    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "venue-a",
        "sasl_plain_password": "pw",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # The given CA, and only it: the system's CAs are not trusted for the local broker.
    der = [c["subject"] for c in context.get_ca_certs()]
    assert der == [((("commonName", "kessai local CA"),),)]


@pytest.mark.parametrize(
    "changes", [{"kafka_username": None}, {"kafka_password": None}, {"kafka_password": ""}]
)
def test_sasl_ssl_without_a_user_or_password_is_a_clear_error(
    ca_file: Path, changes: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match="KESSAI_KAFKA_CREDENTIALS_FILE"):
        client_kwargs(_secure(ca_file, **changes))
    with pytest.raises(ValueError, match="KESSAI_KAFKA_CREDENTIALS_FILE"):
        faust_credentials(_secure(ca_file, **changes))


def test_faust_passes_the_same_arguments_to_aiokafka(ca_file: Path) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    credentials = faust_credentials(_secure(ca_file))

    assert isinstance(credentials, faust.SASLCredentials)
    auth = dict(credentials_to_aiokafka_auth(credentials))
    assert isinstance(auth.pop("ssl_context"), ssl.SSLContext)
    assert auth == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "venue-a",
        "sasl_plain_password": "pw",
    }


def test_the_ca_file_is_a_certificate_not_a_key(ca_file: Path) -> None:
    # What a client is handed must hold no private key.
    text = ca_file.read_text()
    assert "PRIVATE KEY" not in text
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(text.encode(), password=None)
