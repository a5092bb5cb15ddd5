"""`python -m moot.executors.image [--with PKG ...] [--if-missing]`: build the sandbox image."""

from __future__ import annotations

from ._image import build_image, image_tag, main

__all__ = ["build_image", "image_tag", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
