"""The secure local Kafka profile: TLS certificates, SCRAM principals and their files.

``kessai kafka up --secure`` runs the same one-node KRaft broker as the open dev
profile (:mod:`streams.devtools.localkafka`), but its client listener is SASL_SSL with
SCRAM-SHA-512, and Kafka's StandardAuthorizer denies whatever the ACL table
(:mod:`streams.security.acl`) does not allow. This module holds what is particular to
that profile, as pure functions over a folder (``<state_dir>/kafka-secure/secure/``):

- a local CA and a broker certificate for 127.0.0.1 and localhost (PEM), made with
  ``cryptography``; the CA's key is thrown away once it has signed;
- one random password per principal (:data:`PRINCIPALS`), a JSON credentials file
  and a ``KESSAI_*`` env file for each, all mode 0600;
- the broker's listener and authorizer properties, and the StorageTool
  ``--add-scram`` arguments that create the SCRAM users when the storage is formatted.

localkafka starts and stops the JVM; :mod:`streams.kafka.auth` turns settings into
client arguments.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from streams.security.acl import ADMIN, BRIDGE, OPS, PRINCIPALS, REGISTRAR, WORKER

__all__ = [
    "SecureFiles",
    "ensure_certificates",
    "ensure_credentials",
    "ensure_web_token",
    "listener_properties",
    "scram_format_args",
    "write_client_files",
]

#: The secure profile's folder under the state dir, beside the dev profile's ``kafka/``.
PROFILE_DIR_NAME = "kafka-secure"
#: Its default client port (controller: +1), clear of the dev profile's 9092/9093.
SECURE_PORT_DEFAULT = 9192

SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
#: Kafka refuses fewer than 4096 for SCRAM-SHA-512; twice that costs a client ~10 ms.
SCRAM_ITERATIONS = 8192
SCRAM_SALT_BYTES = 32
#: 32 random bytes, URL-safe base64: no quote, comma or bracket to escape in a JAAS
#: line or an --add-scram argument.
PASSWORD_BYTES = 32
CERT_VALID_DAYS = 825
#: A certificate this close to its end is made anew (with a new CA) at the next `up`.
CERT_RENEW_DAYS_MIN = 30
#: The broker's names: clients connect to 127.0.0.1 and check it against the SAN.
BROKER_HOSTS: Final = ("127.0.0.1", "localhost")

StandardAuthorizer: Final = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

# ------------------------------------------------------------------------------ files


@dataclass(frozen=True)
class SecureFiles:
    """Where the profile keeps its certificates and secrets: ``<profile>/secure/``."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def broker_pem(self) -> Path:
        """The broker's private key (PKCS#8) and certificate chain: its PEM keystore."""
        return self.root / "broker.pem"

    def credentials(self, principal: str) -> Path:
        return self.root / "credentials" / f"{principal}.json"

    def env(self, principal: str) -> Path:
        return self.root / "env" / f"{principal}.env"

    @property
    def admin_client_properties(self) -> Path:
        """``--command-config`` for Kafka's tools, as the admin."""
        return self.root / "admin-client.properties"

    @property
    def acls_digest(self) -> Path:
        return self.root / "acls.sha256"

    @property
    def signers(self) -> Path:
        """The signer registry the profile's workers and auditors check records with."""
        return self.root / "signers" / "signers.json"

    def signing_key(self, signer: str) -> Path:
        return self.root / "signers" / f"{signer}.pem"

    @property
    def registry_admin_key(self) -> Path:
        """The operators' admin key, which signs the registry (``kessai signers``)."""
        return self.root / "signers" / "registry-admin.pem"

    @property
    def web_token(self) -> Path:
        """The bearer token of the workers' HTTP API (streams/runtime/web/guard.py)."""
        return self.root / "web-token"


def ensure_web_token(files: SecureFiles) -> bool:
    """The workers' web token (0600), made once; True when made now."""
    if files.web_token.exists():
        return False
    write_private(files.web_token, secrets.token_urlsafe(32) + "\n")
    return True


def write_private(path: Path, text: str) -> None:
    """Write *text* to *path*, readable by its owner only, replacing it in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)  # an older .tmp kept its mode through O_CREAT
    tmp.replace(path)


# ------------------------------------------------------------------------ certificates


def ensure_certificates(
    files: SecureFiles, *, now: datetime.datetime | None = None, dns_names: tuple[str, ...] = ()
) -> bool:
    """Make a CA and a broker certificate unless valid ones exist; return whether made.
    ``dns_names``: more names the broker answers to (``kafka`` in deploy/compose.yaml).

    The CA signs the broker's certificate and its key is then dropped: nothing else
    may ever be signed by it, and there is no CA key on disk to steal.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    if _still_valid(files, now):
        return False
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kessai local CA")])
    not_after = now + datetime.timedelta(days=CERT_VALID_DAYS)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    *(x509.DNSName(name) for name in dns_names),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    # Kafka's PEM keystore reads PKCS#8 keys only ("BEGIN PRIVATE KEY").
    key_pem = broker_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    chain = broker_cert.public_bytes(pem).decode() + ca_cert.public_bytes(pem).decode()
    write_private(files.broker_pem, key_pem + chain)
    write_private(files.ca, ca_cert.public_bytes(pem).decode())
    files.ca.chmod(0o644)  # a CA certificate is public
    return True


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _still_valid(files: SecureFiles, now: datetime.datetime) -> bool:
    try:
        ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
        certs = x509.load_pem_x509_certificates(files.broker_pem.read_bytes())
    except (OSError, ValueError):
        return False
    renew_at = now + datetime.timedelta(days=CERT_RENEW_DAYS_MIN)
    return bool(certs) and all(c.not_valid_after_utc > renew_at for c in (ca, certs[0]))


# ------------------------------------------------------------------------- principals


def ensure_credentials(files: SecureFiles) -> dict[str, str]:
    """Each principal's password: read back, or made (random) for those that lack one."""
    passwords: dict[str, str] = {}
    for principal in PRINCIPALS:
        path = files.credentials(principal)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            password = document["password"]
            assert document["username"] == principal, (path, document["username"])
            assert isinstance(password, str) and password, path
        except FileNotFoundError:
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            write_private(path, json.dumps({"username": principal, "password": password}) + "\n")
        passwords[principal] = password
    return passwords


def scram_format_args(
    passwords: dict[str, str], *, salt_of: dict[str, bytes] | None = None
) -> list[str]:
    """StorageTool ``format`` arguments that create every principal's SCRAM credential.

    Kafka takes a salted password instead of the password itself
    (``kafka.tools.StorageTool format --add-scram``, 3.5+): the passwords never appear
    on a command line, where ``ps`` would show them. SaltedPassword is RFC 5802's
    Hi(password, salt, i), which is PBKDF2 with HMAC-SHA-512. ``salt_of`` is for tests.
    """
    args: list[str] = []
    for principal in sorted(passwords):
        salt = (salt_of or {}).get(principal) or secrets.token_bytes(SCRAM_SALT_BYTES)
        salted = hashlib.pbkdf2_hmac(
            "sha512", passwords[principal].encode(), salt, SCRAM_ITERATIONS
        )
        args += [
            "--add-scram",
            f"{SCRAM_MECHANISM}=[name={principal},iterations={SCRAM_ITERATIONS},"
            f'salt="{base64.b64encode(salt).decode()}",'
            f'saltedpassword="{base64.b64encode(salted).decode()}"]',
        ]
    return args


#: Who signs as what in the local profile, and the accounts each venue serves there
#: (change them with ``kessai signers``; docs/security.md). The worker principal signs
#: as the matcher.
LOCAL_SIGNERS: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    ("venue-a", "venue", ("a-*",)),
    ("venue-b", "venue", ("b-*",)),
    (BRIDGE, "bridge", ()),
    (REGISTRAR, "instruments", ()),
    ("kessai", "matcher", ()),
)
#: The signer each principal signs as, in its env file.
SIGNS_AS: Final[dict[str, str]] = {
    "venue-a": "venue-a",
    "venue-b": "venue-b",
    BRIDGE: BRIDGE,
    REGISTRAR: REGISTRAR,
    WORKER: "kessai",
}


def ensure_signers(files: SecureFiles) -> bool:
    """The local signers' Ed25519 keys (0600), the admin key, and the registry of the
    signers' public keys for a new deployment id, signed by the admin key, made once;
    True when made now. An operator's later changes to the registry stay."""
    from streams.security import signing  # here: signing imports the settings, this module not

    if files.signers.exists():
        return False
    if not files.registry_admin_key.exists():
        signing.write_private_key(files.registry_admin_key, signing.new_private_key_pem())
    entries = []
    for signer_id, role, accounts in LOCAL_SIGNERS:
        path = files.signing_key(signer_id)
        if not path.exists():
            signing.write_private_key(path, signing.new_private_key_pem())
        public = signing.SigningKey.load(signer_id, path, "-").public_text()
        entries.append(signing.entry(signer_id, role, public, accounts))
    document = signing.registry_document(
        entries,
        deployment=signing.new_deployment_id(),
        admin=signing.load_admin_key(files.registry_admin_key),
    )
    write_private(files.signers, document.decode())
    return True


def registry_identity(files: SecureFiles) -> tuple[str, str]:
    """The deployment id the registry names, and the admin key's public half."""
    from streams.security import signing

    deployment = str(json.loads(files.signers.read_bytes())["deployment"])
    admin = signing.load_admin_key(files.registry_admin_key)
    return deployment, signing.public_key_text(admin.public_key())


def write_client_files(
    files: SecureFiles,
    bootstrap: str,
    state_dir: Path,
    *,
    seen_as: SecureFiles | None = None,
    env_dir: str = "env",
) -> None:
    """Per principal, an env file for ``set -a; . FILE; set +a``; and the admin's
    client properties for Kafka's own tools. A principal that signs gets its key; the
    workers, ops and the admin get the signer registry (workers check with it, ops'
    replays check as the workers did).

    ``seen_as``: where the clients find the folder, when not where it is written (a
    container's mount); ``env_dir``: the env files' folder under it.
    """
    deployment, registry_key = registry_identity(files)
    written, files = files, seen_as or files
    for principal in PRINCIPALS:
        variables = {
            "KESSAI_BOOTSTRAP": bootstrap,
            "KESSAI_STATE_DIR": str(state_dir),
            "KESSAI_KAFKA_SECURITY": "sasl_ssl",
            "KESSAI_KAFKA_CREDENTIALS_FILE": str(files.credentials(principal)),
            "KESSAI_KAFKA_CA_FILE": str(files.ca),
        }
        variables["KESSAI_DEPLOYMENT"] = deployment
        if principal in (WORKER, OPS, ADMIN):
            variables["KESSAI_SIGNERS_FILE"] = str(files.signers)
            variables["KESSAI_REGISTRY_KEY"] = registry_key
        if principal == ADMIN:
            variables["KESSAI_REGISTRY_ADMIN_KEY_FILE"] = str(files.registry_admin_key)
            # The worker wants it on its HTTP API; ops and the admin send it.
            variables["KESSAI_WEB_TOKEN_FILE"] = str(files.web_token)
        if principal in SIGNS_AS:
            variables["KESSAI_SIGNING_KEY_FILE"] = str(files.signing_key(SIGNS_AS[principal]))
            variables["KESSAI_SIGNER_ID"] = SIGNS_AS[principal]
        lines = [
            f"# kessai's secure local Kafka, as {principal} (streams/devtools/localkafka/secure.py)"
        ]
        lines += [f"{key}={shlex.quote(value)}" for key, value in variables.items()]
        write_private(written.root / env_dir / f"{principal}.env", "\n".join(lines) + "\n")


def admin_client_properties(files: SecureFiles, admin_password: str) -> str:
    return "\n".join(
        [
            "# Kafka's tools as the admin (AclCommand --command-config). Secret: mode 0600.",
            "security.protocol=SASL_SSL",
            f"sasl.mechanism={SCRAM_MECHANISM}",
            jaas("scram", ADMIN, admin_password),
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={files.ca}",
            "",
        ]
    )


def jaas(kind: Literal["scram", "plain"], username: str, password: str, *extra: str) -> str:
    module = {
        "scram": "org.apache.kafka.common.security.scram.ScramLoginModule",
        "plain": "org.apache.kafka.common.security.plain.PlainLoginModule",
    }[kind]
    fields = " ".join([f'username="{username}"', f'password="{password}"', *extra])
    return f"sasl.jaas.config={module} required {fields};"


# ------------------------------------------------------------------------ server config


def listener_properties(
    *, host: str, port: int, controller_port: int, files: SecureFiles, admin_password: str
) -> list[str]:
    """The listener, TLS, SASL and authorizer lines of the secure ``server.properties``:
    one client listener, on which the broker also talks to itself."""
    assert port != controller_port, port
    return sasl_listener_properties(
        clients=[("SASL_SSL", f"{host}:{port}", f"{host}:{port}")],
        inter_broker="SASL_SSL",
        controller=f"{host}:{controller_port}",
        files=files,
        admin_password=admin_password,
    )


def sasl_listener_properties(
    *,
    clients: list[tuple[str, str, str]],
    inter_broker: str,
    controller: str,
    files: SecureFiles,
    admin_password: str,
    controller_tls: bool = False,
) -> list[str]:
    """The listener, TLS, SASL and authorizer lines for client listeners ``clients``
    (name, bind address, advertised address), all SASL_SSL with SCRAM-SHA-512; the
    broker talks to itself on ``inter_broker``; the controller listens on ``controller``.
    ``controller_tls``: the controllers' listener crosses a network (a cluster of
    nodes): SASL/PLAIN over TLS, not in clear on loopback.
    """
    assert '"' not in admin_password and "\\" not in admin_password
    assert inter_broker in {name for name, _, _ in clients}, inter_broker
    scram = SCRAM_MECHANISM.lower()
    per_listener = []
    for name, _, _ in clients:
        per_listener += [
            f"listener.name.{name.lower()}.sasl.enabled.mechanisms={SCRAM_MECHANISM}",
            # Each SASL listener needs its login module, even one the broker never
            # connects out through (without: "Could not find a 'KafkaServer' entry").
            f"listener.name.{name.lower()}.{scram}." + jaas("scram", ADMIN, admin_password),
        ]
    protocols = ",".join(f"{name}:SASL_SSL" for name, _, _ in clients)
    controller_protocol = "SASL_SSL" if controller_tls else "SASL_PLAINTEXT"
    return [
        "# Clients: SASL/SCRAM-SHA-512 over TLS, nothing else. The broker talks to itself",
        f"# on {inter_broker} as the admin.",
        "listeners="
        + ",".join(f"{name}://{bind}" for name, bind, _ in clients)
        + f",CONTROLLER://{controller}",
        "advertised.listeners=" + ",".join(f"{name}://{adv}" for name, _, adv in clients),
        f"inter.broker.listener.name={inter_broker}",
        "controller.listener.names=CONTROLLER",
        # The controller listener: SASL/PLAIN without TLS, on loopback only, one user (the
        # admin, a super user). SCRAM cannot guard it (KRaft's controllers need to
        # authenticate before the metadata that holds SCRAM credentials is loaded), and
        # a PLAINTEXT one would make an anonymous local process a super user via the
        # Admin API's --bootstrap-controller (KIP-919). What it exposes: its port to
        # local processes, which must know the admin password to do anything; the
        # password crosses loopback in clear, which only root can watch.
        # Several nodes (controller_tls): the controllers' listener crosses the network.
        f"listener.security.protocol.map=CONTROLLER:{controller_protocol},{protocols}",
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
        *per_listener,
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        "listener.name.controller.plain."
        + jaas("plain", ADMIN, admin_password, f'user_{ADMIN}="{admin_password}"'),
        "",
        "# TLS from PEM files made by kessai (a local CA; no client certificates).",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={files.broker_pem}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={files.ca}",
        "ssl.client.auth=none",
        "",
        "# Deny what no ACL allows; the ACLs are streams/devtools/localkafka/secure.py's ACLS.",
        f"authorizer.class.name={StandardAuthorizer}",
        f"super.users=User:{ADMIN}",
        "allow.everyone.if.no.acl.found=false",
    ]
