"""Number and shape formatting for the HTML report (registered as Jinja2 filters)."""
from __future__ import annotations

import math

DASH = "\u2014"


def integer(value) -> str:
    """1234567 -> '1,234,567'."""
    return DASH if value is None else f"{int(value):,}"


def fixed(value, digits: int = 2) -> str:
    """Fixed decimals with thousands separators."""
    return DASH if value is None else f"{value:,.{digits}f}"


def sig(value, digits: int = 3) -> str:
    """About `digits` significant figures, without exponent notation for everyday magnitudes."""
    if value is None:
        return DASH
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= digits - 1:
        return f"{value:,.0f}"
    if magnitude < -4:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits - 1 - magnitude}f}"


def compact(value) -> str:
    """Large counts with an SI suffix: 1_234_567 -> '1.23 M'."""
    if value is None:
        return DASH
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{sig(value / size)} {suffix}"
    return sig(value)


def shape(value) -> str:
    """[3, 224, 224] -> '3×224×224'; a list of shapes (multi-input layers) joined with ' + '."""
    if not value:
        return DASH
    if isinstance(value[0], list):
        if all(v == value[0] for v in value):
            return f"{shape(value[0])} (\u00d7{len(value)})"
        return " + ".join(shape(v) for v in value)
    return "\u00d7".join(str(v) for v in value)


def qformat(bits, frac) -> str:
    """The fixed-point notation of docs/fixed-point.md: Q(bits, frac)."""
    return DASH if bits is None else f"Q({bits},{frac})"


def tone(pct) -> str:
    """CSS class for a utilisation percentage: ok below 80 %, warn up to 100 %, bad above."""
    if pct is None:
        return "muted"
    if pct > 100:
        return "bad"
    return "warn" if pct >= 80 else "ok"


FILTERS = {"integer": integer, "fixed": fixed, "sig": sig, "compact": compact, "shape": shape,
           "tone": tone}
#: how resource keys of estimate.json read on the page
RESOURCE_LABELS = {"dsp": "DSP", "alm": "ALM", "ram_blocks": "RAM"}

GLOBALS = {"qformat": qformat, "resource_labels": RESOURCE_LABELS}
