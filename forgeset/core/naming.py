"""Names that end up in keys, folder names and manifest columns: one pattern, one slug rule.

A name matches NAME_PATTERN: lower-case letters, digits and dashes, starting with a letter or
digit. So a name holds no dot (WebDataset splits a sample key at the first dot), no slash and no
`..`: it is safe as one path component and as part of a key.
"""

from __future__ import annotations

import re

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
NAME_MAX_LENGTH = 200
_NAME = re.compile(NAME_PATTERN)


def is_name(text: object) -> bool:
    """Whether `text` is a plain name (see NAME_PATTERN), no longer than NAME_MAX_LENGTH."""
    return isinstance(text, str) and len(text) <= NAME_MAX_LENGTH and _NAME.fullmatch(text) is not None


def slug(text: str) -> str:
    """Lower-case `text` and keep [a-z0-9-] so it is safe inside a sample key."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-") or "x"
