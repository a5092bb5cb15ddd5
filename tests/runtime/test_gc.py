"""The runtime tunes the garbage collector while it runs and puts back what it found."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import pytest

from moot.runtime import ConfigError, GcPolicy, Runtime

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def python_defaults() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


async def test_default_policy_applies_while_running_and_is_restored_on_stop() -> None:
    frozen = gc.get_freeze_count()
    async with Runtime():
        assert gc.get_threshold() == GcPolicy().threshold
        if frozen == 0:
            assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == frozen


async def test_gc_none_leaves_the_collector_alone() -> None:
    async with Runtime(gc=None):
        assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


async def test_nested_runtimes_restore_when_the_last_one_stops() -> None:
    policy = GcPolicy(threshold=(1234, 5, 6), freeze=False)
    async with Runtime(gc=policy):
        async with Runtime(gc=GcPolicy(threshold=(99, 9, 9), freeze=False)):
            assert gc.get_threshold() == (1234, 5, 6)  # the first runtime's policy holds
        assert gc.get_threshold() == (1234, 5, 6)
    assert gc.get_threshold() == (700, 10, 10)


async def test_a_runtime_stopped_before_start_changes_nothing() -> None:
    runtime = Runtime(gc=GcPolicy(threshold=(1234, 5, 6)))
    await runtime.stop()
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("threshold", [(0, 10, 10), (700, 10), (700, -1, 10), (700.0, 10, 10)])
def test_a_threshold_that_would_switch_collection_off_is_a_config_error(threshold: object) -> None:
    with pytest.raises(ConfigError, match="three positive ints") as info:
        GcPolicy(threshold=threshold)  # type: ignore[arg-type]
    assert info.value.setting == "gc"
