"""A span exporter for `ProcessSpanProcessor`'s child, named as `span_file:exporter`: it
appends each span it is given as one JSON line to $MOOT_TEST_SPAN_FILE."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.sdk.trace import ReadableSpan


class FileExporter(SpanExporter):
    def __init__(self) -> None:
        self.path = os.environ["MOOT_TEST_SPAN_FILE"]

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                out.write(span.to_json(indent=None) + "\n")
        return SpanExportResult.SUCCESS


def exporter() -> SpanExporter:
    return FileExporter()
