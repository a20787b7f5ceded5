"""Cheap fidelity for the explorer: a per-layer sensitivity model of output SQNR.

Computed once per model:
1. The quantiser chooses formats at each candidate bit width b (`quantize(graph, calib,
   bits=b)`); a design's per-layer widths select each tensor's format from these runs
   (`formats_for`).
2. For every conv/dense layer, every role (weights, activations) and every width b,
   only that tensor is rounded to its format and the float network is re-run from that
   layer on; the mean squared change of each graph output is that tensor's noise power
   there, n[layer, role, b][o]. The model input's own rounding gives a constant term.
3. A design's noise at output o is the sum of its tensors' noise powers there (independent
   noise adds in power), its SQNR there 10 log10(P_signal[o] / noise[o]), and the design's
   SQNR the minimum over the outputs: a bound holds for every output, so a small or
   sensitive head (a detector's second scale) is not averaged away by a larger one.

`check_against_simulator` measures the model's error against the bit-accurate simulator
on a few points; `simulated_sqnr` / `simulated_output` run the simulator on one design.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from ..batch import as_batch
from ..errors import ConfigError
from ..ir import reference as float_ref
from ..ir.layers import GRAPH_INPUT, Graph
from .parallel import fork_map, shared
from .space import INPUT_BITS, has_precision_knob, tensor_widths, weight_width


def _fake_quant(x: np.ndarray, fmt) -> np.ndarray:
    scale = math.ldexp(1.0, fmt.frac)
    return np.clip(np.floor(x * scale + 0.5), fmt.lo, fmt.hi) / scale


@dataclass
class SensitivityModel:
    graph: Graph
    calib: np.ndarray
    bits: tuple[int, ...]
    # Per graph output, in the graph's order: arrays of shape (outputs,). A plain float
    # (one output) is accepted too.
    signal_power: np.ndarray | float = 0.0
    noise: dict = field(default_factory=dict)  # (layer, "w_bits"|"a_bits", bits) -> noise power per output
    input_noise: np.ndarray | float = 0.0
    base_formats: dict = field(default_factory=dict)  # bits -> Formats from the quantiser
    seconds: float = 0.0

    # ---- construction ---------------------------------------------------------------
    @classmethod
    def build(cls, graph: Graph, calib: np.ndarray | None, bits, workers: int = 1,
              executor=None, progress=None) -> "SensitivityModel":
        """Quantise at every width and measure every tensor's noise power.

        `workers` > 1 spreads the per-layer noise measurements over that many forked
        processes (POSIX only); `executor` (a Ray cluster) runs them as its tasks instead.
        The result is the same as the serial build, bit for bit. progress(done, total) is
        called as quantiser runs and noise measurements finish.
        """
        import time

        from ..hostmem import check_sensitivity
        from ..quant.calibrate import synthetic_calibration

        t0 = time.perf_counter()
        # the float reference of the whole set stays alive: refuse a set the host cannot hold
        # before making (or running) it, not with a MemoryError half-way
        source, given = f"model {graph.name}", calib is not None
        if not given:
            check_sensitivity(source, graph, None)
            calib = synthetic_calibration(graph)
        calib = as_batch(graph, calib, "calibration data", error=ConfigError, strict=False)
        if given:
            check_sensitivity(source, graph, len(calib))
        model = cls(graph, calib, tuple(sorted(bits)))
        widths = list(model.bits) + ([INPUT_BITS] if INPUT_BITS not in model.bits else [])
        # One task per noise term: the input's rounding first, then every
        # (layer, width, role) in order.
        tasks: list[tuple] = [(None, 0, "input")]
        for i, layer in enumerate(graph.layers):
            if not has_precision_knob(layer):
                continue
            for b in model.bits:
                tasks.append((i, b, "w_bits"))
                tasks.append((i, b, "a_bits"))
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            progress(done[0], len(widths) + len(tasks))

        tick = step if progress is not None else None
        formats = fork_map(_worker_quantize, widths, int(workers or 1), (graph, calib), executor, tick)
        model.base_formats = dict(zip(widths, formats))
        workers = int(workers or 1)
        # The float runs below use single-threaded BLAS whatever `workers` is: OpenBLAS
        # picks different kernels (different rounding) for different thread counts, and
        # the serial and parallel builds must agree bit for bit. Many small GEMMs gain
        # little from BLAS threads anyway; `workers` is the way to use more cores.
        # The weights are held as float64 for the duration (exact, and the float runs
        # then don't convert them again on every layer call); restored afterwards.
        saved = {}
        try:
            for layer in graph.layers:
                if layer.has_weights and layer.weight.dtype != np.float64:
                    saved[layer.name] = layer.weight
                    layer.weight = layer.weight.astype(np.float64)
            with threadpool_limits(limits=1):
                ref = float_ref.execute(graph, calib)
                y = [ref[name] for name in graph.outputs]
                model.signal_power = np.array([np.mean(v * v) for v in y], dtype=np.float64)
                for name, power in zip(graph.outputs, model.signal_power):
                    if power <= 0:
                        raise ConfigError(f"model {graph.name}: the float output {name!r} is all zero on the "
                                          "calibration data")
                # tasks near the input re-run the whole network: they come first, spread over the workers
                results = fork_map(_worker_noise, tasks, workers, (model, ref, y), executor, tick)
        finally:
            for layer in graph.layers:
                if layer.name in saved:
                    layer.weight = saved[layer.name]
        model.input_noise = results[0]
        for (i, b, role), value in zip(tasks[1:], results[1:]):
            model.noise[(graph.layers[i].name, role, b)] = value
        model.seconds = time.perf_counter() - t0
        return model

    def _task_noise(self, ref, y, task) -> np.ndarray:
        """The noise power of one tensor at every output: (None, 0, "input") or (layer index, bits, role)."""
        i, b, role = task
        if role == "input":
            x_in = _fake_quant(self.calib, self.base_formats[INPUT_BITS].input)
            return self._rerun_noise(ref, 0, {GRAPH_INPUT: x_in}, y)
        layer = self.graph.layers[i]
        fm = self.base_formats[b].layers[layer.name]
        if role == "w_bits":
            w_q = _fake_quant(layer.weight.astype(np.float64), fm.weight)
            return self._rerun_noise(ref, i, {}, y, weight=(layer, w_q))
        a_q = _fake_quant(ref[layer.name], fm.out)
        return self._rerun_noise(ref, i + 1, {layer.name: a_q}, y)

    def _rerun_noise(self, ref, start: int, replaced: dict, y_ref, weight=None) -> np.ndarray:
        """Noise power at each output when the float run restarts at layer `start` with some
        tensors replaced (an output computed before `start` keeps its reference value: 0)."""
        values = dict(ref)
        values[GRAPH_INPUT] = self.calib
        values.update(replaced)
        for layer in self.graph.layers[start:]:
            xs = [values[s] for s in layer.inputs]
            if weight is not None and layer is weight[0]:
                saved = layer.weight
                layer.weight = weight[1]
                try:
                    values[layer.name] = float_ref.run_layer(layer, *xs)
                finally:
                    layer.weight = saved
            else:
                values[layer.name] = float_ref.run_layer(layer, *xs)
        out = np.empty(len(y_ref), dtype=np.float64)
        for o, (name, ref_o) in enumerate(zip(self.graph.outputs, y_ref)):
            d = values[name] - ref_o
            out[o] = np.mean(d * d)
        return out

    # ---- queries ----------------------------------------------------------------------
    def sqnr(self, bits: dict) -> float:
        """Modelled output SQNR (dB) of per-layer widths {layer: {"w_bits": b, "a_bits": b}}:
        the lowest over the graph outputs."""
        return min(self.sqnr_per_output(bits))

    def sqnr_per_output(self, bits: dict) -> list[float]:
        """Modelled SQNR (dB) at each graph output, in the graph's order."""
        terms = self._float_terms()
        if not isinstance(terms[None], tuple):  # one output: plain floats
            total = terms[None]
            for layer, roles in bits.items():
                for role, b in roles.items():
                    total += terms[(layer, role, int(b))]
            return [_db(terms["signal"], total)]
        total = list(terms[None])
        outputs = range(len(total))
        for layer, roles in bits.items():
            for role, b in roles.items():
                t = terms[(layer, role, int(b))]
                for o in outputs:
                    total[o] += t[o]
        return [_db(p, n) for p, n in zip(terms["signal"], total)]

    def _float_terms(self) -> dict:
        """The noise table as Python floats (summed thousands of times a search: numpy's per-call
        overhead would dominate), a float per entry with one output, else a tuple per entry;
        None: the input's term, "signal": the signal powers."""
        cache = getattr(self, "_terms", None)
        if cache is None or cache[0] is not self.noise or len(cache[1]) != len(self.noise) + 2:
            one = np.size(self.signal_power) == 1

            def floats(v):
                v = np.atleast_1d(v)
                return float(v[0]) if one else tuple(float(x) for x in v)
            table = {key: floats(v) for key, v in self.noise.items()}
            table[None], table["signal"] = floats(self.input_noise), floats(self.signal_power)
            self._terms = cache = (self.noise, table)
        return cache[1]

    __call__ = sqnr

    def formats_for(self, bits: dict):
        """A Formats for the simulator/compiler: each tensor's format from the run at its width.

        Layers without a precision knob take the widest width among their inputs; tensors
        that must share a format (an operator's tied inputs and output) take the widest width
        of their group.
        """
        from ..quant.calibrate import tied_tensors
        from ..quant.formats import Formats, LayerFormat, validate

        width = tensor_widths(self.graph, bits, tied_tensors(self.graph))
        layers = {}
        for layer in self.graph.layers:
            out = self.base_formats[width[layer.name]].layers[layer.name].out
            wfmt = None
            if layer.has_weights:
                wfmt = self.base_formats[weight_width(layer, bits, width)].layers[layer.name].weight
            layers[layer.name] = LayerFormat(out, wfmt)
        fm = Formats(self.base_formats[width[GRAPH_INPUT]].input, layers,
                     {"chosen_by": "cnn2gate explore", "calibration_samples": int(self.calib.shape[0])})
        validate(fm, self.graph, "explore")
        return fm

    def simulated_sqnr(self, bits: dict) -> float:
        """Output SQNR (dB) of the bit-accurate simulator for these widths, on the calibration
        data: the lowest over the graph outputs (as `sqnr`)."""
        return self.outputs_sqnr(self.simulated_outputs(bits))

    def outputs_sqnr(self, outs: list[np.ndarray]) -> float:
        """The lowest SQNR (dB) of `outs` (one array per graph output) against the float outputs."""
        return min(self.sqnr_each(outs))

    def sqnr_each(self, outs: list[np.ndarray]) -> list[float]:
        """SQNR (dB) of each of `outs` (one array per graph output) against its float output."""
        from ..sim import sqnr_db

        return [float(sqnr_db(ref, out)) for ref, out in zip(self.float_outputs(), outs)]

    def simulated_output(self, bits: dict) -> np.ndarray:
        """The bit-accurate simulator's first output (as floats) for these widths, on the calibration data."""
        return self.simulated_outputs(bits)[0]

    def simulated_outputs(self, bits: dict) -> list[np.ndarray]:
        """Every graph output of the bit-accurate simulator (as floats), in the graph's order."""
        from ..sim import simulate

        outs = self._presimulated_outputs(bits)
        if outs is not None:
            return outs
        floats = simulate(self.graph, self.formats_for(bits), self.calib, keep="output").floats
        return [floats[name] for name in self.graph.outputs]

    def presimulate(self, points: list[dict], executor=None) -> None:
        """Simulate these designs now, as the executor's tasks (one per design, all at once).

        Later simulated_output / simulated_sqnr calls on them take these results (or raise
        their AccumulatorOverflow): the same values as simulating here, only computed
        elsewhere and in parallel. Without an executor nothing is done ahead.
        """
        if executor is None:
            return
        if getattr(self, "_presimulated", None) is None:
            self._presimulated = {}
        todo: dict = {}
        for bits in points:
            key = _bits_key(bits)
            if key not in self._presimulated:
                todo.setdefault(key, bits)
        if not todo:
            return
        executor.share(self)
        self._presimulated.update(zip(todo, executor.map(_worker_simulate, list(todo.values()))))

    def _presimulated_outputs(self, bits: dict):
        hit = (getattr(self, "_presimulated", None) or {}).get(_bits_key(bits))
        if hit is None:
            return None
        out, err = hit
        if err is not None:
            raise err
        return out

    def float_output(self) -> np.ndarray:
        """The float model's first output on the calibration data (computed once)."""
        return self.float_outputs()[0]

    def float_outputs(self) -> list[np.ndarray]:
        """Every float graph output on the calibration data, in the graph's order (computed once)."""
        if getattr(self, "_float_outputs", None) is None:
            ref = float_ref.execute(self.graph, self.calib)
            self._float_outputs = [ref[name] for name in self.graph.outputs]
        return self._float_outputs

    def check_against_simulator(self, points: list[dict]) -> dict:
        """Modelled vs simulated SQNR on some points: per point and mean/max absolute error (dB)."""
        from ..errors import AccumulatorOverflow

        rows = []
        for bits in points:
            model = self.sqnr(bits)
            try:
                sim = self.simulated_sqnr(bits)
            except AccumulatorOverflow:
                continue
            rows.append({"model_db": round(model, 2), "sim_db": round(sim, 2), "error_db": round(model - sim, 2)})
        errs = [abs(r["error_db"]) for r in rows if math.isfinite(r["error_db"])]
        return {"points": rows, "mean_abs_error_db": round(float(np.mean(errs)), 2) if errs else None,
                "max_abs_error_db": round(float(np.max(errs)), 2) if errs else None}


def _db(signal: float, noise: float) -> float:
    return float("inf") if noise <= 0 else 10.0 * math.log10(signal / noise)


# ---- parallel build: tasks for parallel.fork_map ---------------------------------------
def _worker_noise(task) -> np.ndarray:
    model, ref, y = shared()
    return model._task_noise(ref, y, task)


def _bits_key(bits: dict) -> tuple:
    return tuple(sorted((layer, role, int(b)) for layer, roles in bits.items() for role, b in roles.items()))


def _worker_simulate(bits: dict):
    from ..errors import AccumulatorOverflow

    try:
        return shared().simulated_outputs(bits), None
    except AccumulatorOverflow as err:
        return None, err


def _worker_quantize(bits: int):
    from ..quant import quantize

    graph, calib = shared()
    with threadpool_limits(limits=1):  # the same rounding in the parent and in a worker
        return quantize(graph, calib, bits=bits)
