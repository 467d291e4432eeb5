"""The ledger intake's per-record handler: what one ``payments`` or ``custody`` record
becomes. Pure.

:func:`intake_record` decodes the record and turns it into a
:class:`~streams.ledger.messages.Move` for the ledger, or says why it is rejected.
The ``intake`` agent (:mod:`streams.ledger.agent`) sends the one or the other;
``kessai replay`` runs the same function over the committed inputs and compares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas import MoveBonds, MoveCash, SchemaError, Source, check_key, decode, source_of
from streams.ledger.messages import Move
from streams.money import UNITS_MAX, to_units
from streams.security import signing

#: Why a record was rejected: (reason code, detail).
Rejected = tuple[str, str]


def to_move(
    command: MoveCash | MoveBonds,
    source: Source,
    tokens: Mapping[str, int],
    onchain: Mapping[str, int] | None = None,
) -> Move | Rejected:
    """The ledger's move for a decoded deposit or withdrawal, in the asset's units.

    ``onchain``: each token's decimals on-chain (bridge precision; None: the
    ledger's). A deposit may be as fine as the chain: it credits the whole ledger
    units, ``floor(onchain / 10^(on - ledger))``, and the rest, in on-chain units, is
    the move's :attr:`~Move.dust` (1,000.5 JPYC at 18 on-chain and 0 ledger decimals:
    1,000 credited, 0.5 dust). A withdrawal moves whole ledger units only: on-chain
    it is exactly ``ledger x 10^(on - ledger)``."""
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
    ledger = tokens[command.token]
    chain = ledger if onchain is None else max(onchain.get(command.token, ledger), ledger)
    fine = command.kind == "deposit" and chain > ledger  # as fine as the chain
    decimals = chain if fine else ledger
    # The limit in ledger units, whatever the precision it is read at.
    found = to_units(command.amount, decimals, UNITS_MAX * 10 ** (decimals - ledger))
    if found is None or found <= 0:
        why = "its on-chain precision" if fine else f"a {command.kind} moves whole ledger units"
        return (
            "invalid_amount",
            f"{command.amount} {command.token} has more than {decimals} decimals ({why}), "
            f"or is more than {UNITS_MAX} ledger units",
        )
    units, dust = divmod(found, 10 ** (decimals - ledger))
    return Move(
        f"payment:{command.payment_id}",
        command.account,
        command.token,
        units,
        command.kind,
        source,
        dust,
    )


def intake_record(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    tokens: Mapping[str, int],
    signers: signing.Registry | None = None,
    *,
    where: tuple[int, int],
    arrived_s: float = 0.0,
    verified: dict[str, Any] | Rejected | None = None,
    onchain: Mapping[str, int] | None = None,
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
    source = source_of(topic, *where, key, value, decoded=decoded)
    return to_move(decoded, source, tokens, onchain)
