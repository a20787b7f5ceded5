"""Plain JSON values from numpy scalars and arrays, tuples and paths.

    to_jsonable(obj)                        # a copy json.dumps accepts
    json.dumps(doc, default=to_jsonable)    # the same, only where the encoder needs it

Either way the text is the one a plain-Python document would give: JSON writes a number
the same whether it came from a Python or a numpy scalar.
"""
from __future__ import annotations

import math
import os


def to_jsonable(value, *, nan_to_null: bool = False):
    """`value` with numpy scalars and arrays made Python numbers and lists, tuples made
    lists, paths made strings and dict keys made strings, recursively.

    nan_to_null: NaN and infinities become None (strict JSON has neither).
    Raises TypeError for anything else that JSON cannot hold.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, nan_to_null=nan_to_null) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, nan_to_null=nan_to_null) for v in value]
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if not nan_to_null or math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy scalar or array
        return to_jsonable(value.tolist(), nan_to_null=nan_to_null)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
