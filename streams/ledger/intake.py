"""The ledger intake's per-record handler: what one ``payments`` or ``custody`` record
becomes. Pure.

:func:`intake_record` decodes the record and turns it into a
:class:`~streams.ledger.messages.Move` for the ledger, or says why it is rejected.
The ``intake`` agent (:mod:`streams.ledger.agent`) sends the one or the other;
``kessai replay`` runs the same function over the committed inputs and compares.
"""

from __future__ import annotations

from typing import Any

from schemas import MoveBonds, MoveCash, SchemaError, Source, check_key, decode, source_of
from streams.ledger.messages import Move
from streams.money import UNITS_MAX, to_units
from streams.security import signing

#: Why a record was rejected: (reason code, detail).
Rejected = tuple[str, str]


def to_move(
    command: MoveCash | MoveBonds, source: Source, tokens: dict[str, int]
) -> Move | Rejected:
    """The ledger's move for a decoded deposit or withdrawal, in the asset's units."""
    if isinstance(command, MoveBonds):
        return Move(
            f"custody:{command.movement_id}",
            command.account,
            command.isin,
            command.quantity,
            command.kind,
            source,
        )
    if command.token not in tokens:
        known = ", ".join(sorted(tokens))
        return "unknown_token", f"token {command.token!r} is not configured ({known})"
    units = to_units(command.amount, tokens[command.token])
    if units is None or units <= 0:
        return (
            "invalid_amount",
            f"{command.amount} {command.token} has more than {tokens[command.token]} "
            f"decimals, or is more than {UNITS_MAX} units",
        )
    return Move(
        f"payment:{command.payment_id}",
        command.account,
        command.token,
        units,
        command.kind,
        source,
    )


def intake_record(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    tokens: dict[str, int],
    signers: signing.Registry | None = None,
    *,
    where: tuple[int, int],
    arrived_s: float = 0.0,
    verified: dict[str, Any] | Rejected | None = None,
) -> Move | Rejected:
    """The move for one record of ``payments`` or ``custody`` at ``where`` (partition,
    offset), or why it is rejected. With ``signers``, the bridge's signature is checked
    first (streams/security/signing.py), unless ``verified`` holds what
    :func:`signing.verify` answered for these bytes with ``signers`` already. The move
    carries where the record is and its digest, never its bytes: a command stays small
    whatever came in."""
    try:
        check_key(key)
        decoded = decode(topic, value)
    except SchemaError as err:
        return err.reason, err.detail
    assert isinstance(decoded, MoveCash | MoveBonds), type(decoded)
    assert value is not None  # decode refuses a tombstone
    if key != decoded.account.encode():
        # One account's moves must stay in order: keyed by anything else, a withdrawal
        # could pass the deposit meant to fund it (docs/security.md, L1).
        return "wrong_key", f"a {topic} record is keyed by its account, not {key!r}"
    if signers is not None:
        if verified is None:
            verified = signing.verify(signers, topic, key, value, signing.broker_time(arrived_s))
        if isinstance(verified, tuple):
            return verified
    return to_move(decoded, source_of(topic, *where, key, value, decoded=decoded), tokens)
