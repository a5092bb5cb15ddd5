"""Placeholder demo until the runtime lands."""

print("moot")
