"""How a running runtime tunes Python's cyclic garbage collector, and how it puts it back.

A runtime with many chats in flight holds about a hundred tracked objects per chat (envelopes,
futures, coroutine frames, message dicts), almost none of them garbage. With Python's default
thresholds (700, 10, 10) the collector walks that live heap over and over: at 10,000 chats it
took about half of the run's CPU. `GcPolicy` raises the thresholds while a runtime runs and,
optionally, freezes the objects that exist at start-up (modules, classes, registered agents) so
no pass walks them again. The last runtime to stop restores the settings it found, so nothing
leaks into code that runs afterwards. Pass `Runtime(gc=None)` to leave the collector alone.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from ._errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class GcPolicy:
    """The collector's settings while a runtime runs (see the module docstring).

    `threshold` is `gc.set_threshold`'s triple. `freeze` moves the objects alive at start into
    the collector's permanent generation (`gc.freeze`), when nothing else has frozen any; they
    are unfrozen when the last runtime stops. Any uncollected start-up garbage stays until then.

    Raises:
        ConfigError: a threshold is not a positive int (0 would switch collection off).
    """

    threshold: tuple[int, int, int] = (50_000, 20, 10)
    freeze: bool = True

    def __post_init__(self) -> None:
        if len(self.threshold) != 3 or not all(
            isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in self.threshold
        ):
            raise ConfigError(
                f"GcPolicy.threshold must be three positive ints, got {self.threshold!r}",
                setting="gc",
            )


DEFAULT_GC = GcPolicy()
"""What `Runtime()` uses: thresholds for many chats in flight, start-up objects frozen."""


class _Tuning:
    """Process-wide: the settings found before the first runtime applied a policy."""

    __slots__ = ("froze", "saved", "users")

    def __init__(self) -> None:
        self.users = 0
        self.saved: tuple[int, int, int] | None = None
        self.froze = False


_tuning = _Tuning()


def apply_gc(policy: GcPolicy) -> None:
    """A runtime starts with `policy`. The first one in the process saves the current settings;
    while several run, the first one's policy holds."""
    t = _tuning
    t.users += 1
    if t.users > 1:
        return
    t.saved = gc.get_threshold()
    gc.set_threshold(*policy.threshold)
    if policy.freeze and gc.get_freeze_count() == 0:
        gc.freeze()
        t.froze = True


def restore_gc() -> None:
    """A runtime that applied a policy stopped; the last one restores what the first found."""
    t = _tuning
    if t.users == 0:
        return
    t.users -= 1
    if t.users:
        return
    if t.saved is not None:
        gc.set_threshold(*t.saved)
        t.saved = None
    if t.froze:
        gc.unfreeze()
        t.froze = False
