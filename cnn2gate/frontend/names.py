"""Safe identifiers for layer and graph names (they end up in C code and file names)."""
from __future__ import annotations

import re

MAX_LEN = 40
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def sanitize(raw: str, fallback: str) -> str:
    """Keep [A-Za-z0-9_], collapse the rest to '_', never start with a digit, at most MAX_LEN chars."""
    s = _UNSAFE.sub("_", raw or "")
    s = re.sub(r"_+", "_", s).strip("_")
    if not s:
        s = fallback
    if s[0].isdigit():
        s = f"{fallback.rstrip('0123456789') or 'n'}_{s}"
    return s[:MAX_LEN].rstrip("_") or fallback[:MAX_LEN]


class NameAllocator:
    """Hands out unique names; case-insensitive, so generated files never clash on any file system."""

    def __init__(self, reserved=()):
        self._taken = {r.lower() for r in reserved}

    def take(self, raw: str, fallback: str) -> str:
        base = sanitize(raw, fallback)
        name, i = base, 1
        while name.lower() in self._taken:
            i += 1
            suffix = f"_{i}"
            name = base[: MAX_LEN - len(suffix)].rstrip("_") + suffix
        self._taken.add(name.lower())
        return name
