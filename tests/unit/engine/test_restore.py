"""What a restore leaves behind in the worker's process."""

from __future__ import annotations


def test_what_a_restore_leaves_is_frozen_out_of_the_collectors_full_scans() -> None:
    """Full collections over a restored worker's objects stood the event loop still for
    64-97 ms each; what exists after the restore is frozen (it lives as long as the
    worker), so they scan only what came after."""
    import gc

    from streams.engine.service import _freeze_heap

    restored = [[i] for i in range(1_000)]  # tracked objects, as a restore leaves them
    try:
        _freeze_heap()
        scanned = {id(o) for g in range(3) for o in gc.get_objects(generation=g)}
        assert not any(id(o) in scanned for o in restored)
        after = [[1]]
        assert id(after[0]) in {id(o) for o in gc.get_objects(generation=0)}
    finally:
        gc.unfreeze()
