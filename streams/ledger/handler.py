"""What the ledger agent does with one command, over any mapping of accounts.

:func:`handle_command` is the ledger agent's whole logic for one record of
``kessai-ledger-commands``, written over ``MutableMapping`` s so that the agent runs it
on its faust tables and ``kessai replay`` (:mod:`streams.audit.replay`) on dicts:
the account's step (:func:`streams.settlement.steps.account_step`), the journal
records chained onto the account's hash chain, the command ids to remember, and the
messages to send on. Pure: no faust, no Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.ledger import domain as core
from streams.ledger import journal
from streams.settlement import steps

#: account -> the state's JSON bytes (:meth:`streams.ledger.domain.AccountState.to_bytes`).
Accounts = MutableMapping[str, bytes]
#: command id -> True once applied.
Applied = MutableMapping[str, bool]


@dataclass
class CommandOutputs:
    """What one command causes."""

    #: ``ledger-events`` records (wire objects, hashed), in order.
    records: list[dict[str, Any]] = field(default_factory=list)
    #: Messages on: ``(("account" | "trade", key), message)``.
    sends: list[tuple[steps.Key, Any]] = field(default_factory=list)
    #: A refused move's public source and why: ``(topic, key, raw value, reason, detail)``.
    rejection: tuple[str, str | None, str, str, str] | None = None
    #: Refused, but nothing to report (a repeated lock, a move without its source).
    refused: bool = False


def handle_command(
    accounts: Accounts, applied: Applied, command: Any, decimals_of: Callable[[str], int]
) -> CommandOutputs:
    """Apply one ledger command: update ``accounts`` and ``applied``; what to send."""
    out = CommandOutputs()
    account = command.account
    command_id = (
        command.command_id if isinstance(command, steps.Move) else getattr(command, "cause", None)
    )
    before = core.AccountState.from_bytes(accounts.get(account))
    fx = steps.account_step(
        before,
        account,
        command,
        already_applied=bool(command_id and applied.get(command_id)),
    )
    if fx.rejection is not None:
        out.refused = True
        if isinstance(command, steps.Move) and command.source is not None:
            topic, text_key, raw = command.source
            out.rejection = (topic, text_key, raw, fx.rejection.reason, fx.rejection.detail)
        return out
    # The chain's tip goes into the state, so it commits with the records.
    out.records = journal.chain(before, fx.state, fx.postings, decimals_of)
    accounts[account] = fx.state.to_bytes()
    for applied_id in fx.applied:
        applied[applied_id] = True
    out.sends = fx.sends
    return out


def add_inflow(row: dict[str, str] | None, move: steps.Move) -> dict[str, str]:
    """An ``inflow`` row (asset -> net external inflow in units, as a decimal string)
    after an applied ``move``. The ledger agent keeps one row per command partition;
    the conservation gauge compares their sum with the balances."""
    out = dict(row or {})
    delta = move.units if move.kind == "deposit" else -move.units
    out[move.asset] = str(int(out.get(move.asset, "0")) + delta)
    return out
