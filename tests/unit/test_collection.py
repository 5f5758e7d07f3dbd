"""The collector pause around large batches: only for large ones, always undone, never re-enabling what was off."""

from __future__ import annotations

import gc

import pytest

from sealserve.serve.request.collection import LARGE, collection_paused


def test_large_sections_pause_the_collector_and_resume_it_even_on_errors() -> None:
    assert gc.isenabled()
    with collection_paused(LARGE):
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError, match="bad batch"), collection_paused(LARGE):
        raise ValueError("bad batch")
    assert gc.isenabled()


def test_small_sections_leave_the_collector_on() -> None:
    with collection_paused(LARGE - 1):
        assert gc.isenabled()


def test_a_collector_switched_off_elsewhere_stays_off() -> None:
    gc.disable()
    try:
        with collection_paused(LARGE):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
