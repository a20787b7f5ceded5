"""The report's figures, drawn with matplotlib's object API (no pyplot, no global backend).

Each function returns PNG bytes; `data_uri` turns them into the `data:` URL the HTML
embeds. PNGs carry no software/date metadata, so the same facts give the same bytes.
"""
from __future__ import annotations

import base64
import io
import math

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter

#: one palette for plots and stylesheet (the template reads it as CSS variables)
COLOURS = {
    "ink": "#1f2937",
    "muted": "#6b7280",
    "grid": "#e5e7eb",
    "compute": "#4f46e5",
    "memory": "#d97706",
    "roof": "#111827",
    "ok": "#15803d",
    "warn": "#b45309",
    "bad": "#b91c1c",
    "other": "#9ca3af",
}
AGENT_COLOURS = ["#4f46e5", "#0891b2", "#db2777", "#65a30d", "#7c3aed", "#ea580c"]

_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.edgecolor": COLOURS["muted"],
    "axes.labelcolor": COLOURS["ink"],
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": COLOURS["grid"],
    "grid.linewidth": 0.7,
    "xtick.color": COLOURS["muted"],
    "ytick.color": COLOURS["muted"],
    "legend.frameon": False,
    "svg.hashsalt": "cnn2gate",
    "path.simplify": True,
}
DPI = 144
HALF_WIDTH = 5.6   # inches: a figure that shares a row with another
FULL_WIDTH = 11.0  # inches: a figure on a row of its own


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


#: default margins around the axes, in inches: left, right, top, bottom
MARGINS = (0.75, 0.2, 0.15, 0.55)


def _render(draw, size: tuple[float, float], ncols: int = 1, margins: tuple = MARGINS, gap: float = 0.8) -> bytes:
    """Draw on a fresh figure and return PNG bytes. Margins are fixed (in inches) rather than
    computed by a layout engine: that halves the drawing time and keeps every plot aligned."""
    width, height = size
    left, right, top, bottom = margins
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=size, dpi=DPI)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                            bottom=bottom / height, wspace=gap * ncols / (width - left - right - gap * (ncols - 1)))
        axes = fig.subplots(1, ncols, squeeze=False)[0]
        draw(*axes)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return out.getvalue()


def _bound_colour(bound: str) -> str:
    return COLOURS.get(bound, COLOURS["other"])


def roofline(layers: list[dict], peak_gops: float, bandwidth_gbs: float) -> bytes:
    """Attained GOPS against operational intensity (ops/byte), log-log, with the board's roofs.

    Layers without a positive intensity or throughput cannot sit on a log axis and are left out.
    """
    points = [r for r in layers if r["estimate"] and (r["estimate"]["intensity"] or 0) > 0
              and (r["estimate"]["attained_gops"] or 0) > 0]
    ridge = peak_gops / bandwidth_gbs

    def draw(ax):
        xs = [r["estimate"]["intensity"] for r in points] or [ridge]
        ys = [r["estimate"]["attained_gops"] for r in points] or [peak_gops]
        lo = 10 ** math.floor(math.log10(min(min(xs), ridge) / 2))
        hi = 10 ** math.ceil(math.log10(max(max(xs), ridge) * 2))
        ax.plot([lo, ridge, hi], [bandwidth_gbs * lo, peak_gops, peak_gops], color=COLOURS["roof"], lw=1.8,
                zorder=3, label="roofline")
        ax.axvline(ridge, color=COLOURS["muted"], lw=0.8, ls=":", zorder=2)
        ax.annotate(f"peak {peak_gops:,.0f} GOPS", (hi, peak_gops), xytext=(-4, 5), textcoords="offset points",
                    ha="right", va="bottom", color=COLOURS["roof"], fontsize=8.5)
        slope_x = math.sqrt(lo * ridge)
        ax.annotate(f"{bandwidth_gbs:g} GB/s", (slope_x, bandwidth_gbs * slope_x), xytext=(-6, 6),
                    textcoords="offset points", ha="right", rotation=0, color=COLOURS["roof"], fontsize=8.5)
        ax.annotate(f"ridge {ridge:.3g} ops/B", (ridge, 0.02), xycoords=("data", "axes fraction"), xytext=(4, 0),
                    textcoords="offset points", ha="left", va="bottom", color=COLOURS["muted"], fontsize=7.5)
        for bound in ("compute", "memory"):
            sel = [r for r in points if r["estimate"]["bound"] == bound]
            if sel:
                ax.scatter([r["estimate"]["intensity"] for r in sel], [r["estimate"]["attained_gops"] for r in sel],
                           s=[24 + 4 * (r["estimate"]["time_pct"] or 0) for r in sel], color=_bound_colour(bound),
                           alpha=0.85, edgecolor="white", linewidth=0.6, zorder=4, label=f"{bound}-bound layer")
        _label_slowest(ax, points, lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ymin = min(min(ys), bandwidth_gbs * lo)
        ax.set_ylim(10 ** math.floor(math.log10(ymin)), 10 ** math.ceil(math.log10(peak_gops * 1.5)))
        ax.set_xlabel("operational intensity (ops / byte of external memory)")
        ax.set_ylabel("attained GOPS")
        legend = ax.legend(loc="upper left", fontsize=8)
        for handle in legend.legend_handles:
            if hasattr(handle, "set_sizes"):
                handle.set_sizes([30])

    return _render(draw, (HALF_WIDTH, 4.0))


def _label_slowest(ax, points: list[dict], lo: float, hi: float, count: int = 5) -> None:
    """Name the slowest layers on the roofline, skipping any that would sit on a label already placed."""
    placed = []
    for r in sorted(points, key=lambda r: (-r["estimate"]["ms"], r["name"])):
        x, y = r["estimate"]["intensity"], r["estimate"]["attained_gops"]
        lx, ly = math.log10(x), math.log10(y)
        if any(abs(lx - px) < 1.0 and abs(ly - py) < 0.3 for px, py in placed):
            continue
        placed.append((lx, ly))
        right_side = lx > math.log10(lo) + 0.7 * (math.log10(hi) - math.log10(lo))
        ax.annotate(shorten(r["name"]), (x, y), xytext=(-6 if right_side else 6, -3), textcoords="offset points",
                    ha="right" if right_side else "left", fontsize=7, color=COLOURS["ink"])
        if len(placed) == count:
            break


def shorten(name: str, limit: int = 22) -> str:
    """Long layer names cut in the middle: 'layers_layers_2_downsample_0' -> 'layers_lay…nsample_0'.
    Control characters (which no font can draw) become spaces."""
    name = "".join(ch if ch.isprintable() else " " for ch in name)
    if len(name) <= limit:
        return name
    keep = limit - 1
    return name[: keep - keep // 2] + "\u2026" + name[len(name) - keep // 2:]


def layer_times(layers: list[dict]) -> bytes:
    """Estimated milliseconds per layer, model order top to bottom, coloured by bound."""
    timed = [r for r in layers if r["estimate"]]

    def draw(ax):
        names = [r["name"] for r in timed]
        ms = [r["estimate"]["ms"] for r in timed]
        ax.barh(range(len(timed)), ms, color=[_bound_colour(r["estimate"]["bound"]) for r in timed], height=0.72)
        ax.set_yticks(range(len(timed)), [shorten(n, 26) for n in names], fontsize=7.5 if len(timed) < 40 else 6)
        ax.invert_yaxis()
        ax.set_xlabel("estimated time (ms)")
        ax.grid(False, axis="y")
        ax.margins(y=0.01)
        handles = [Patch(color=_bound_colour(b), label=f"{b}-bound") for b in ("compute", "memory")]
        ax.legend(handles=handles, loc="lower right", fontsize=8)

    label_inches = 0.2 + 0.072 * max((len(shorten(r["name"], 26)) for r in timed), default=4)
    return _render(draw, (HALF_WIDTH, max(4.0, 0.17 * len(timed) + 1.0)),
                   margins=(min(label_inches, 2.2), 0.2, 0.15, 0.55))


def convergence(history: list[dict], best_so_far: list) -> bytes:
    """Latency of every evaluated design and the best fitting latency found so far."""
    ordered = sorted(history, key=lambda h: h["index"])
    agents = sorted({h["agent"] for h in ordered})

    def draw(ax):
        for i, agent in enumerate(agents):
            fit = [h for h in ordered if h["agent"] == agent and h["fits"] and h["total_ms"] is not None]
            ax.scatter([h["index"] for h in fit], [h["total_ms"] for h in fit], s=14, alpha=0.55,
                       color=AGENT_COLOURS[i % len(AGENT_COLOURS)], linewidth=0, label=f"{agent} (fits)")
        misfit = [h for h in ordered if not h["fits"] and h["total_ms"] is not None]
        if misfit:
            ax.scatter([h["index"] for h in misfit], [h["total_ms"] for h in misfit], s=14, marker="x",
                       color=COLOURS["other"], linewidth=0.8, label="does not fit")
        steps = [(h["index"], b) for h, b in zip(ordered, best_so_far) if b is not None]
        if steps:
            ax.step([s[0] for s in steps], [s[1] for s in steps], where="post", color=COLOURS["ok"], lw=2,
                    label="best so far", zorder=4)
        values = [h["total_ms"] for h in ordered if h["total_ms"]]
        if values and max(values) / min(values) > 20:
            ax.set_yscale("log")
        ax.set_xlabel("evaluation")
        ax.set_ylabel("latency (ms)")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=len(agents) + 2, fontsize=8, borderaxespad=0)

    return _render(draw, (FULL_WIDTH, 3.4), margins=(0.75, 0.2, 0.4, 0.55))


def pareto(history: list[dict], fronts: dict[str, list[int]], best_index, limits: dict | None = None) -> bytes:
    """Latency against DSP blocks and against ALMs, the non-dominated designs joined by a line.

    `limits` ({"dsp": n, "alm": n}, optional) draws the board's capacity as a dashed line."""
    limits = limits or {}
    labels = {"dsp": "DSP blocks used", "alm": "ALMs used"}
    panels = [res for res in ("dsp", "alm") if fronts.get(res)]
    if not panels:
        raise ValueError("no design records DSP or ALM use: nothing to plot")
    by_index = {h["index"]: h for h in history}

    def draw(*axes):
        for ax, res in zip(axes, panels):
            usable = [h for h in history if h.get(res) is not None and h["total_ms"] is not None]
            fit = [h for h in usable if h["fits"]]
            misfit = [h for h in usable if not h["fits"]]
            ax.scatter([h[res] for h in fit], [h["total_ms"] for h in fit], s=14, color=COLOURS["compute"],
                       alpha=0.45, linewidth=0, label="fits")
            if misfit:
                ax.scatter([h[res] for h in misfit], [h["total_ms"] for h in misfit], s=12, marker="x",
                           color=COLOURS["other"], linewidth=0.7, label="does not fit")
            front = [by_index[i] for i in fronts[res]]
            ax.plot([h[res] for h in front], [h["total_ms"] for h in front], "-o", color=COLOURS["memory"],
                    ms=4.5, lw=1.6, label="Pareto front", zorder=4)
            if best_index in by_index and by_index[best_index].get(res) is not None:
                best = by_index[best_index]
                ax.scatter([best[res]], [best["total_ms"]], marker="*", s=160, color=COLOURS["ok"],
                           edgecolor="white", linewidth=0.6, zorder=5, label="chosen")
            if limits.get(res):
                ax.axvline(limits[res], color=COLOURS["bad"], lw=1, ls="--", label="board capacity")
            values = [h["total_ms"] for h in usable if h["total_ms"]]
            if values and max(values) / min(values) > 20:
                ax.set_yscale("log")
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.set_xlabel(labels[res])
            ax.set_ylabel("latency (ms)")
            ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=5, fontsize=8, borderaxespad=0,
                      columnspacing=1.2, handletextpad=0.4)

    return _render(draw, (FULL_WIDTH if len(panels) == 2 else HALF_WIDTH, 3.6), ncols=len(panels),
                   margins=(0.75, 0.2, 0.4, 0.55))
