"""Content hashes: the keys of cached artifacts, run configurations and files staged on a board."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def content_hash(obj) -> str:
    """A short sha256 of a JSON-serialisable description (keys sorted, so order never matters)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
