"""Shared fixtures for moot's test suite."""
