"""One directory name per key, injective: two different keys never share a work dir.

A plain key (lower-case letters, digits, '.', '-' and '_', at most 64 characters, starting and
ending with a letter or digit) is its own name. Any other key gets a readable prefix, a '~' and a
hash of the whole key. No plain name holds a '~', and plain names are lower case, so names stay
apart on case-blind file systems too.
"""

from __future__ import annotations

import hashlib
import re
import string

_PLAIN = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_KEEP = frozenset(string.ascii_letters + string.digits + "._-")
PREFIX_CHARS = 40
HASH_HEX = 32  # 128 bits: a collision is out of reach


def key_dir_name(key: str) -> str:
    """The work-dir name of `key`: one safe path component, different for every different key."""
    if _PLAIN.fullmatch(key):
        return key
    readable = "".join(c if c in _KEEP else "_" for c in key[:PREFIX_CHARS]).lstrip(".-")
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_HEX]
    return f"{readable or 'key'}~{digest}"
