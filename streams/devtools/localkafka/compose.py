"""The secure profile for deploy/compose.yaml: ``kessai kafka compose-secrets``.

Writes, into ``deploy/secrets/`` (git-ignored), what the compose stack mounts at
``/secrets``: the same kinds of files :mod:`streams.devtools.localkafka.secure` makes
for the local secure broker, for a cluster of three nodes ``kafka-1`` .. ``kafka-3``
in a container network (issue 19), each a broker and a controller (a quorum of three:
one node lost, the cluster goes on), every topic replicated three times:

- ``ca.pem``, ``broker.pem``: a local CA and the nodes' certificate for ``kafka-1`` ..
  ``kafka-3``, ``localhost`` and 127.0.0.1;
- ``credentials/<principal>.json`` and ``signers/`` (keys and registry), as locally;
- ``env/<principal>.env``: the ``KESSAI_*`` variables of a client in the stack
  (bootstrap ``kafka-1:9092,kafka-2:9092,kafka-3:9092``, paths under ``/secrets``);
  ``host-env/<principal>.env``: the same for a client on the host (127.0.0.1:19092 ..
  19094, paths in this folder);
- ``server-kafka-N.properties``: each node's whole configuration (two SASL_SSL client
  listeners: ``INTERNAL`` for the stack and between the brokers, ``HOST`` for its host
  port; the controllers' listener SASL_SSL too, as it crosses the network), with
  :func:`streams.devtools.localkafka.base_properties` at replication 3;
- ``kafka-start.sh`` and ``format.args``: format the storage once with every
  principal's SCRAM credential (salted, in a java argument file: a salted password
  is as good as the password for a SCRAM login, so never on a command line), then
  start the broker;
- ``acls.sh``: installs :data:`streams.security.acl.ACLS` with Kafka's own tool;
- ``admin-client.properties``: the admin's client settings for those tools;
- ``mounts/<service>/``: the files each service of the stack may see (:data:`MOUNTS`;
  each node's own properties as ``server.properties``).

Every file that holds a secret is mode 0600. The image's ``appuser`` must be able to
read them: run ``kessai kafka compose-secrets`` as the user the containers run as,
or see deploy/compose.yaml. Not run on kessai's development machines (no Docker);
the same configuration pieces run in the local secure profile's tests.
"""

from __future__ import annotations

import base64
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from streams.devtools.localkafka import secure as kafkasecure
from streams.devtools.localkafka.config import base_properties
from streams.devtools.localkafka.jars import KAFKA_VERSION, log4j2
from streams.devtools.localkafka.jvm import java_argfile
from streams.devtools.localkafka.secure import SecureFiles, write_private
from streams.security import acl
from streams.security.acl import ADMIN

#: Inside the containers.
MOUNT: Final = Path("/secrets")
KAFKA_HOME: Final = "/opt/kafka"
DATA_DIR: Final = "/var/lib/kafka/data"
#: The cluster's nodes (container hostnames); node ids 1, 2, 3.
NODES: Final = ("kafka-1", "kafka-2", "kafka-3")
INTERNAL_PORT: Final = 9092
#: The first node's published port on the host; the others follow.
HOST_PORT: Final = 19092
CONTROLLER_PORT: Final = 9093
#: Every topic's replicas (and two in sync for a write: config.base_properties).
REPLICATION: Final = 3
#: The workers' image keeps its state here (deploy/worker.Dockerfile).
WORKER_STATE_DIR: Final = Path("/app/.kessai")
#: Where ``compose-secrets`` keeps the stack's cluster id: made once per deployment
#: (random), so that a data volume formatted for another deployment is refused by the
#: broker instead of silently served (docs/security.md, L9).
CLUSTER_ID_FILE: Final = "cluster-id"


def ensure_cluster_id(out: Path) -> str:
    """The deployment's cluster id in ``out``, made (22 base64url characters, as Kafka's
    own ``random-uuid``) the first time."""
    path = out / CLUSTER_ID_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    write_private(path, cluster_id + "\n")
    return cluster_id


#: What each service of the stack mounts at /secrets (``mounts/<service>/``): its own
#: files only. A worker gets its password, the CA, the registry and the matcher's key;
#: never the admin's password or a venue's or the bridge's key.
MOUNTS: Final[dict[str, tuple[str, ...]]] = {
    **{
        node: (
            "server.properties",  # from server-{node}.properties
            "format.args",
            "kafka-start.sh",
            "broker.pem",
            "ca.pem",
            "admin-client.properties",
        )
        for node in NODES
    },
    "acls": ("acls.sh", "admin-client.properties", "ca.pem"),
    "worker": (
        "env/worker.env",
        "credentials/worker.json",
        "ca.pem",
        "signers/signers.json",
        "signers/kessai.pem",
        "web-token",
    ),
    # Prometheus scrapes the workers' /metrics with their token.
    "prometheus": ("web-token",),
}


@dataclass(frozen=True)
class Addresses:
    """Where the nodes listen and are reached: the stack's (:data:`COMPOSE`), or, for
    a test without Docker, loopback ports (:func:`loopback`)."""

    #: Per node: (bind, advertised) of INTERNAL, of HOST, and the controller's
    #: (bind, as the voters name it).
    internal: tuple[tuple[str, str], ...]
    host: tuple[tuple[str, str], ...]
    controller: tuple[tuple[str, str], ...]

    @property
    def voters(self) -> str:
        return ",".join(f"{i + 1}@{adv}" for i, (_, adv) in enumerate(self.controller))

    @property
    def bootstrap(self) -> str:
        """The stack's clients' ``KESSAI_BOOTSTRAP``: every node's INTERNAL address."""
        return ",".join(adv for _, adv in self.internal)

    @property
    def host_bootstrap(self) -> str:
        """The host's clients' ``KESSAI_BOOTSTRAP``: every published port."""
        return ",".join(adv for _, adv in self.host)


COMPOSE: Final = Addresses(
    internal=tuple((f"0.0.0.0:{INTERNAL_PORT}", f"{n}:{INTERNAL_PORT}") for n in NODES),
    host=tuple(
        (f"0.0.0.0:{HOST_PORT + i}", f"127.0.0.1:{HOST_PORT + i}") for i in range(len(NODES))
    ),
    controller=tuple((f"0.0.0.0:{CONTROLLER_PORT}", f"{n}:{CONTROLLER_PORT}") for n in NODES),
)


def loopback(ports: list[int]) -> Addresses:
    """The three nodes on 127.0.0.1, three ``ports`` each (internal, host, controller):
    the same configuration run from the Maven jars, without Docker."""
    assert len(ports) == 3 * len(NODES), ports
    at = [f"127.0.0.1:{p}" for p in ports]
    return Addresses(
        internal=tuple((a, a) for a in at[0::3]),
        host=tuple((a, a) for a in at[1::3]),
        controller=tuple((a, a) for a in at[2::3]),
    )


def server_properties(
    node: int,
    files: SecureFiles,
    admin_password: str,
    partitions: int,
    *,
    addresses: Addresses = COMPOSE,
    data_dir: str = DATA_DIR,
) -> str:
    """Node ``node``'s (0, 1 or 2) ``server.properties``; ``files`` as it sees them."""
    lines = [
        "# Written by `kessai kafka compose-secrets` (streams.devtools.localkafka). Secret.",
        f"# {NODES[node]} of a cluster of {len(NODES)}: each node a broker and a controller.",
        "process.roles=broker,controller",
        f"node.id={node + 1}",
        f"controller.quorum.voters={addresses.voters}",
        "# INTERNAL: the stack's services and the other brokers (kafka-N:9092). HOST:",
        "# clients on the host, through this node's published port.",
        *kafkasecure.sasl_listener_properties(
            clients=[
                ("INTERNAL", *addresses.internal[node]),
                ("HOST", *addresses.host[node]),
            ],
            inter_broker="INTERNAL",
            controller=addresses.controller[node][0],
            files=files,
            admin_password=admin_password,
            controller_tls=True,
        ),
        "",
        f"log.dirs={data_dir}",
        "",
        *base_properties(partitions, REPLICATION),
    ]
    return "\n".join(lines)


def format_args(scram_args: list[str], cluster_id: str) -> str:
    """The java argument file of the storage format: the SCRAM credentials (salted
    passwords, as good as passwords for a SCRAM login) stay off the command line."""
    return java_argfile(
        [
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            f"{MOUNT}/server.properties",
            "--ignore-formatted",
            *scram_args,
        ]
    )


def start_script() -> str:
    # The image's own tools logging config: log4j 2's YAML from Kafka 4.0 on.
    if log4j2(KAFKA_VERSION):
        tools_log = f"-Dlog4j2.configurationFile={KAFKA_HOME}/config/tools-log4j2.yaml "
    else:
        tools_log = f"-Dlog4j.configuration=file:{KAFKA_HOME}/config/tools-log4j.properties "
    return "\n".join(
        [
            "#!/bin/bash",
            "# The compose broker: format the volume once, with every principal's SCRAM",
            "# credential (format.args), then run. Written by `kessai kafka compose-secrets`.",
            "set -euo pipefail",
            f'if [ ! -f "{DATA_DIR}/meta.properties" ]; then',
            f'  java -Xmx256M -cp "{KAFKA_HOME}/libs/*" {tools_log}@{MOUNT}/format.args',
            "fi",
            f"exec {KAFKA_HOME}/bin/kafka-server-start.sh {MOUNT}/server.properties",
            "",
        ]
    )


def acl_script() -> str:
    connect = (
        f"--bootstrap-server {COMPOSE.bootstrap} --command-config {MOUNT}/admin-client.properties"
    )
    calls = [
        f"{KAFKA_HOME}/bin/kafka-acls.sh {connect} " + " ".join(shlex.quote(a) for a in call)
        for call in acl.acl_command_args(acl.ACLS)
    ]
    return "\n".join(
        [
            "#!/bin/bash",
            "# Install kessai's ACL table (streams.security.acl) as the admin.",
            "set -euo pipefail",
            *calls,
            'echo "kessai: ACLs installed"',
            "",
        ]
    )


def write_compose_secrets(out: Path, *, partitions: int = 4) -> list[Path]:
    """Write the stack's secure files into ``out`` (kept when they exist: certificates,
    passwords and keys are made once). Returns the files written."""
    files = SecureFiles(out)
    mounted = SecureFiles(MOUNT)
    kafkasecure.ensure_certificates(files, dns_names=NODES)
    passwords = kafkasecure.ensure_credentials(files)
    kafkasecure.ensure_signers(files)
    kafkasecure.ensure_web_token(files)
    kafkasecure.write_client_files(files, COMPOSE.bootstrap, WORKER_STATE_DIR, seen_as=mounted)
    kafkasecure.write_client_files(
        files, COMPOSE.host_bootstrap, out.resolve() / "state", env_dir="host-env"
    )
    admin = passwords[ADMIN]
    written = {
        **{
            out / f"server-{node}.properties": server_properties(i, mounted, admin, partitions)
            for i, node in enumerate(NODES)
        },
        out / "format.args": format_args(
            kafkasecure.scram_format_args(passwords), ensure_cluster_id(out)
        ),
        out / "kafka-start.sh": start_script(),
        out / "acls.sh": acl_script(),
        out / "admin-client.properties": kafkasecure.admin_client_properties(mounted, admin),
    }
    for path, text in written.items():
        write_private(path, text)
    for service, names in MOUNTS.items():
        folder = out / "mounts" / service
        for name in names:
            source = f"server-{service}.properties" if name == "server.properties" else name
            write_private(folder / name, (out / source).read_text(encoding="utf-8"))
    return sorted(written)
