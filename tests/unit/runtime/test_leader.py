"""Which member runs the engine (:mod:`streams.runtime.leader`)."""

from __future__ import annotations

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from streams.runtime.leader import choose, holding_data, one_holder


def test_nobody_holds_it_the_smallest_id_gets_it() -> None:
    assert choose({"m-b": b"", "m-a": b"", "m-c": b""}) == "m-a"


def test_the_holder_keeps_it_when_others_join() -> None:
    assert choose({"m-a": b"", "m-z": holding_data(5)}) == "m-z"


def test_of_two_claimants_the_one_given_it_last_keeps_it() -> None:
    """A holder paused past its session (m-a) was replaced by m-z, then resumed and
    rejoined still claiming: it is fenced, so m-z keeps the engine. The fresh-clone CI
    of 2026-12-04 gave it back to m-a (the smallest id), and both workers exited."""
    assert choose({"m-a": holding_data(1_000), "m-z": holding_data(2_000)}) == "m-z"
    assert choose({"m-a": holding_data(2_000), "m-z": holding_data(1_000)}) == "m-a"
    assert choose({"m-b": holding_data(7), "m-a": holding_data(7)}) == "m-a"
    assert choose({"m-b": b"engine", "m-a": b""}) == "m-b"  # an older worker's claim


def test_a_member_says_when_it_was_given_the_engine_and_forgets_it_when_it_is_not() -> None:
    assignor = one_holder()
    assert assignor.metadata(["trades"]).user_data == b""
    assignor.on_assignment(ConsumerProtocolMemberAssignment(0, [("trades", [0])], b""))
    claim = assignor.metadata(["trades"]).user_data
    assert claim.startswith(b"engine:")
    assignor.on_assignment(ConsumerProtocolMemberAssignment(0, [("trades", [0])], b""))
    assert assignor.metadata(["trades"]).user_data == claim  # kept: the same time
    assignor.on_assignment(ConsumerProtocolMemberAssignment(0, [], b""))
    assert assignor.metadata(["trades"]).user_data == b""
    assert one_holder().metadata(["trades"]).user_data == b""  # per engine
