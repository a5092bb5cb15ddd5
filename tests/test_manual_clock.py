"""`moot.testing.ManualClock`: one fake clock for the runtime's timers and for retry sleeps."""

from __future__ import annotations

import pytest

from moot.runtime import Clock, ConfigError
from moot.testing import ManualClock


def test_advance_fires_due_timers_in_order_and_skips_cancelled_ones() -> None:
    clock = ManualClock()
    fired: list[str] = []
    clock.call_at(2.0, fired.append, "late")
    clock.call_at(1.0, fired.append, "early")
    clock.call_at(1.5, fired.append, "cancelled").cancel()
    clock.call_at(9.0, fired.append, "not yet")
    assert isinstance(clock, Clock)
    assert clock.pending == 3
    clock.advance(2.0)
    assert fired == ["early", "late"]
    assert clock.now() == 2.0
    assert clock.pending == 1


def test_a_monotonic_clock_cannot_move_backwards() -> None:
    with pytest.raises(ConfigError, match="backwards") as caught:
        ManualClock().advance(-1)
    assert caught.value.setting == "seconds"
    assert isinstance(caught.value, ValueError)


async def test_sleep_records_the_delay_and_moves_time_at_once() -> None:
    clock = ManualClock(start=1000.0)
    fired: list[float] = []
    clock.call_at(1003.0, lambda: fired.append(clock.now()))
    await clock.sleep(3.0)
    await clock.sleep(0.5)
    assert clock.delays == [3.0, 0.5]
    assert clock.now() == 1003.5
    assert fired == [1003.0]  # the timer saw the time it was due, not the sleep's end
