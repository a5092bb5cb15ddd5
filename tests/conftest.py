"""Suite-wide setup: structlog routed through stdlib logging so pytest captures it per test."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
import structlog

if TYPE_CHECKING:
    from collections.abc import Iterator


def _configure_structlog() -> None:
    # structlog's default logger writes to the sys.stdout it saw first; pytest swaps and closes
    # that stream per test. Going through stdlib logging lets pytest's handler capture events.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


_configure_structlog()


@pytest.fixture(autouse=True)
def _structlog_through_logging() -> Iterator[None]:
    """Put the suite's structlog setup back after any test that ran a CLI entry point in-process."""
    yield
    _configure_structlog()
