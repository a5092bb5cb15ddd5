"""`UsageTracker.totals()`: the journal's per-turn read of an agent's spend."""

from __future__ import annotations

from moot.models import ModelResponse, Usage, UsageTracker


def test_totals_are_the_summarys_token_and_cost_totals_cached_answers_included() -> None:
    tracker = UsageTracker()
    assert tracker.totals() == (0, 0.0)
    tracker.add(ModelResponse(content="a", model="m1", usage=Usage(total_tokens=10), cost=0.5))
    tracker.add(ModelResponse(content="b", model="m2", usage=Usage(total_tokens=7), cost=0.25))
    cached = ModelResponse(
        content="c", model="m1", usage=Usage(total_tokens=3), cost=0.125, cached=True
    )
    tracker.add(cached)
    summary = tracker.summary()
    assert tracker.totals() == (summary.total_tokens, summary.total_cost) == (20, 0.875)
