"""Runs of layers in one onnxruntime session, the output step included.

One session per layer (sim/ort_conv.py) pays, per layer, a session run and NumPy passes
for the rounding and the clip. Here a maximal run of consecutive layers that the fast
path computes in float32 becomes one graph that also does each layer's output step;
the session returns every layer's output and its raw sums (z of a conv, the aligned
sum of an add), from which NumPy takes the statistics as sim/fast.py does. (Counting
saturations inside the graph, as compare, cast and sum, cost more than it saved.)

Exactness, layer by layer (the arguments of sim/fast.py, unchanged):
* conv with a fused float32 plan (every group one chunk, bias and rounding constant inside
  2^24 units of the plan's power-of-two scale): Conv gives z = (acc + 2^(s-1)) 2^-s
  (s > 0) or acc 2^-s exactly; Floor (s > 0) then Clip to the activation's integer
  range give the output, as fast._fused_round (floor and an integer clip commute).
* add whose worst-case aligned sum plus rounding constant fits 2^24: x * 2^k and every
  partial sum are integers within 2^24, so Mul and Add are exact; the output step is
  fast.requant_float's, op for op (Mul 2^-s, Add 0.5, Floor, Clip; or the left shift's
  pre-clamp, Mul 2^k and Clip), each exact under the same bound.
Floor and Clip never round. Each op says what it becomes (`Op.run_nodes`: conv and add
answer with the functions below); any other layer (or a leaky activation) ends a run.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from .. import ops
from . import fast, ort_conv

#: runs in one session on (False: every layer on its own, as sim/fast.py)
ENABLED = True
#: fewest layers worth one session (a single layer stays on sim/ort_conv.py)
MIN_RUN = 2
#: most bytes of outputs and raw sums one session run may return (larger batches run in parts)
MAX_RUN_BYTES = 256 << 20


class _Builder:
    """ONNX nodes and constants of one run's graph."""

    def __init__(self, dry: bool = False):
        # a dry builder only checks that the layers can be expressed: no copies of the weights
        self.nodes, self.inits, self._n, self.dry = [], [], 0, dry

    def const(self, value) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(None if self.dry else numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, ins: list[str], **attrs) -> str:
        self._n += 1
        out = f"t{self._n}"
        self.nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    def clip(self, a: str, lo, hi) -> str:
        return self.node("Clip", [a, self.const(lo), self.const(hi)])


def _act_range(q) -> tuple[int, int]:
    """The output's integer range after the fused activation (as fast.requant_float)."""
    lo = 0 if q.act in ("relu", "relu6") else q.out.lo
    hi = min(q.out.hi, q.six_q) if q.act == "relu6" else q.out.hi
    return lo, hi


def conv_nodes(b: _Builder, q, x: str) -> tuple[str, str] | None:
    """(y, z) of a conv whose plans are fused single float32 chunks (as on sim/ort_conv.py)."""
    plans = fast._plans(q)
    if not (fast.on_ort(q, plans) and plans[0].fused):
        return None
    layer = q.layer
    w = bias = 0.0
    if not b.dry:
        w = np.concatenate([p.w for p in plans]).reshape(q.weight.shape)
        bias = np.concatenate([p.bias for p in plans])
    z = b.node("Conv", [x, b.const(w), b.const(bias)], strides=list(layer.stride), pads=list(layer.pads),
               dilations=list(layer.dilation), group=layer.groups)
    f = b.node("Floor", [z]) if q.shift > 0 else z
    return b.clip(f, *_act_range(q)), z


def add_nodes(b: _Builder, q, *xs: str) -> tuple[str, str] | None:
    """(y, aligned sum) of an add whose sum, rounding constant included, stays within 2^24."""
    s = q.shift
    bound = sum((1 << (f.bits - 1)) << k for f, k in zip(q.in_fmts, q.in_shifts))
    if q.act == "leaky" or bound + ((1 << (s - 1)) if s > 0 else 0) > fast.F32_EXACT:
        return None
    terms = [b.node("Mul", [x, b.const(np.ldexp(1.0, k))]) if k else x for x, k in zip(xs, q.in_shifts)]
    acc = terms[0] if len(terms) > 1 or terms[0] not in xs else b.node("Identity", [terms[0]])
    for t in terms[1:]:
        acc = b.node("Add", [acc, t])
    lo, hi = _act_range(q)
    if s > 0:
        a = b.node("Floor", [b.node("Add", [b.node("Mul", [acc, b.const(np.ldexp(1.0, -s))]), b.const(0.5)])])
    elif s < 0:
        a = b.node("Mul", [b.clip(acc, q.out.lo, q.out.hi), b.const(np.ldexp(1.0, min(-s, q.out.bits + 1)))])
    else:
        a = acc
    return b.clip(a, lo, hi), acc


class Run:
    """Consecutive layers of the graph as one onnxruntime session."""

    def __init__(self, qg, layers: list, model: onnx.ModelProto, inputs: list[str]):
        self.layers, self.inputs, self._qg, self._model = layers, inputs, qg, model
        self._sessions: dict[tuple[int, int], ort.InferenceSession] = {}
        self.work = sum(layer.macs() for layer in layers if layer.has_weights)
        # float32 outputs and raw sums of one batch item
        self.bytes_per_item = 8 * sum(int(np.prod(layer.out_shape)) for layer in layers)

    def _session(self, threads: int) -> ort.InferenceSession:
        key = ort_conv.session_key(threads)
        sess = self._sessions.get(key)
        if sess is None:
            sess = self._sessions[key] = ort_conv.open_session(self._model, threads)
        return sess

    def fits(self, n: int) -> bool:
        """Whether a batch of n can take this run (empty batches go layer by layer)."""
        return n > 0

    def run(self, values: dict) -> list[tuple[np.ndarray, dict]]:
        """(y, accumulator info) per layer, as fast.run_layer gives them. A batch whose outputs
        and raw sums would pass MAX_RUN_BYTES runs in parts; the parts' statistics combine
        exactly (extremes of extremes, sums of counts)."""
        xs = [np.ascontiguousarray(values[n], dtype=np.float32) for n in self.inputs]
        n = xs[0].shape[0]
        step = max(1, MAX_RUN_BYTES // self.bytes_per_item)
        parts = [self._run_part([x[i : i + step] for x in xs]) for i in range(0, n, step)]
        if len(parts) == 1:
            return parts[0]
        out = []
        for k in range(len(self.layers)):
            ys, infos = zip(*(p[k] for p in parts))
            out.append((np.concatenate(ys), {
                "acc_min": min(i["acc_min"] for i in infos), "acc_max": max(i["acc_max"] for i in infos),
                "sat_low": sum(i["sat_low"] for i in infos), "sat_high": sum(i["sat_high"] for i in infos)}))
        return out

    def _run_part(self, xs: list[np.ndarray]) -> list[tuple[np.ndarray, dict]]:
        threads = fast._ort_threads(xs[0].shape[0] * self.work)
        res = self._session(threads).run(None, {f"x{i}": x for i, x in enumerate(xs)})

        def info(i):  # the statistics of layer i from its z (conv) or aligned sum (add)
            q, a = self._qg[self.layers[i].name], res[2 * i + 1]
            return fast._fused_info(q, *fast.fused_stats(q, a)) if q.layer.has_weights else fast.acc_info(q, a)

        # NumPy reductions release the GIL: the layers' statistics on the simulator's threads
        infos = fast._run_tiles(info, len(self.layers), max(1, fast._blas_threads()))
        return [(res[2 * i], st) for i, st in enumerate(infos)]


def _build(graph, qg, layers: list, dry: bool = False) -> Run | bool | None:
    """The run of `layers`, or None when one of them cannot be expressed (dry: True instead of
    the run when all can)."""
    b = _Builder(dry)
    names = {}  # value name in the IR -> in the run's graph (IR names may clash with ours)
    inputs, outputs = [], []
    for i, layer in enumerate(layers):
        q = qg[layer.name]
        if q.act == "leaky":
            return None
        for s in layer.inputs:
            if s not in names:
                names[s] = f"x{len(inputs)}"
                inputs.append(s)
        made = ops.op_for(layer).run_nodes(b, q, *(names[s] for s in layer.inputs))
        if made is None:
            return None
        _, raw = made
        b.nodes[-1].output[0] = names[layer.name] = f"y{i}"  # y is the last node's output
        outputs += [names[layer.name], raw]
    if dry:
        return True
    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, ["n", *graph.shape_of(s)])
           for i, s in enumerate(inputs)]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
    model = helper.make_model(helper.make_graph(b.nodes, "run", ins, outs, b.inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    return Run(qg, layers, model, inputs)


def runs(graph, qg) -> dict[int, Run]:
    """Maximal runs of at least MIN_RUN joinable layers, by the index of their first layer
    (cached with the first layer's fast-path data)."""
    if not graph.layers:
        return {}
    cache = qg[graph.layers[0].name].cache
    found = cache.get("chain_runs")
    if found is None:
        ok = [_build(graph, qg, [layer], dry=True) is not None for layer in graph.layers]
        found, i = {}, 0
        while i < len(ok):
            j = i
            while j < len(ok) and ok[j]:
                j += 1
            if j - i >= MIN_RUN:
                found[i] = _build(graph, qg, graph.layers[i:j])
            i = max(j, i + 1)
        cache["chain_runs"] = found
    return found
