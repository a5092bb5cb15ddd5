"""moot.executors."""

__all__: list[str] = []
