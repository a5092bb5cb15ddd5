"""The sandbox security suite: every guarantee docs/security.md lists, against the real engine.

It shares the executor suite's Docker fixtures; under CI=true a missing engine fails these tests.
"""

from __future__ import annotations

from ..executors.conftest import docker, make_docker

__all__ = ["docker", "make_docker"]
