"""Seeds and draws as pure functions of their inputs: the same spec gives the same bytes anywhere."""

from __future__ import annotations

import hashlib


def unit_draw(*parts: object) -> float:
    """A uniform number in [0, 1) that depends only on `parts`."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sample_seed(spec_seed: int, key: str) -> int:
    """A 63-bit seed from the spec seed and a key (a sample key, or `KEY:STAGE` for a stage of it).

    Not from the whole spec hash: changing the output format or shard size must not change what
    a generator draws, so that corpora differing only in policy hold the same content.
    """
    digest = hashlib.sha256(f"{spec_seed}:seed:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
