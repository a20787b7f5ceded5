"""Per-layer summary of a graph (the `inspect` command's content)."""
from __future__ import annotations

from .. import ops
from .layers import Graph


def summarize(graph: Graph) -> dict:
    """The `inspect --json` document (keys fixed by docs/cli.md)."""
    return {
        "model": graph.name,
        "input_shape": list(graph.input_shape),
        "output": graph.output,
        "softmax_on_host": graph.softmax,
        # only for several outputs, so single-output documents keep their keys
        **({"outputs": [{"name": name, "shape": list(graph.layer(name).out_shape)} for name in graph.outputs]}
           if len(graph.outputs) > 1 else {}),
        "layers": [
            {
                "name": layer.name,
                "kind": layer.kind,
                "detail": describe(layer),
                "inputs": list(layer.inputs),
                "in_shape": [list(s) for s in layer.in_shapes] if len(layer.in_shapes) > 1 else list(layer.in_shape),
                "out_shape": list(layer.out_shape),
                "act": layer.act,
                "params": layer.params(),
                "macs": layer.macs(),
            }
            for layer in graph.layers
        ],
        "total_params": graph.total_params(),
        "total_macs": graph.total_macs(),
    }


def describe(layer) -> str:
    """Short human description (kernel/stride/groups, mode, ...): the operator's own words."""
    return ops.op_for(layer).describe(layer)


def format_table(rows: list[list[str]], headers: list[str]) -> str:
    """Plain-text table with right-aligned numeric columns."""
    cols = list(zip(headers, *rows)) if rows else [(h,) for h in headers]
    widths = [max(len(str(v)) for v in col) for col in cols]

    def fmt(row):
        out = []
        for v, w in zip(row, widths):
            s = str(v)
            out.append(s.rjust(w) if s.replace(",", "").replace(".", "").lstrip("-").isdigit() else s.ljust(w))
        return "  ".join(out).rstrip()

    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def render_summary(graph: Graph) -> str:
    doc = summarize(graph)
    rows = []
    for layer in doc["layers"]:
        ins = layer["in_shape"]
        in_txt = " + ".join("x".join(map(str, s)) for s in ins) if ins and isinstance(ins[0], list) else "x".join(map(str, ins))
        act = "" if layer["act"] == "none" else layer["act"]
        rows.append([layer["name"], layer["kind"], layer["detail"], act, in_txt,
                     "x".join(map(str, layer["out_shape"])), f"{layer['params']:,}", f"{layer['macs']:,}"])
    table = format_table(rows, ["layer", "kind", "detail", "act", "input", "output", "params", "MACs"])
    tail = f"\n\nmodel {graph.name}: {len(graph)} layers, {doc['total_params']:,} params, {doc['total_macs']:,} MACs"
    if graph.softmax:
        tail += " (+ softmax on the host)"
    return table + tail
