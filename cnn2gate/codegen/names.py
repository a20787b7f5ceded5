"""Names that reach generated C, OpenCL, Makefile and file-system text.

Model names are untrusted: only [A-Za-z0-9_] survives, the length is capped and
every layer name gets its index as a prefix, so results are unique identifiers
that can never close a comment, a string or a line.
"""
from __future__ import annotations

import re

MAX_LEN = 32
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def clean(text: str, max_len: int = MAX_LEN) -> str:
    """ASCII letters, digits and single underscores only; may be empty."""
    out = _UNSAFE.sub("_", str(text)).strip("_")
    out = re.sub(r"_+", "_", out)
    return out[:max_len].rstrip("_")


def layer_stem(index: int, name: str) -> str:
    """File stem and C string for the layer at `index`: `L007_conv3` (always unique)."""
    body = clean(name)
    return f"L{index:03d}_{body}" if body else f"L{index:03d}"


def model_ident(name: str) -> str:
    return clean(name) or "model"


def is_safe(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_]*", text))
