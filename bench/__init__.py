"""moot.bench: the load-test harness behind `moot bench`, usable as a library."""

__all__: list[str] = []
