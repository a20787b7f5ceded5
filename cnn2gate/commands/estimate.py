import json

import click

from ..errors import ConfigError
from ..frontend import load_model
from ..hw import DEFAULT_BOARD, estimate, load_board, load_config
from ..hw.estimate import memory_refusal
from .options import input_shape_option, model_argument


def _load_formats(path, graph):
    from ..quant.formats import load_formats

    return load_formats(path, graph)


@click.command("estimate")
@model_argument
@input_shape_option
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board name (see `cnn2gate boards`) or a board TOML file.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Hardware config JSON (missing keys take the board's defaults).")
@click.option("--formats", "formats_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Fixed-point formats JSON from `quantize` (default: 8-bit everywhere).")
@click.option("--margin", type=click.FloatRange(0.0, 0.99), default=0.0, show_default=True,
              help="Fraction of every resource to keep free when deciding FITS.")
@click.option("--allow-misfit", is_flag=True,
              help="Exit 0 even when the design does not fit the board (default: report, then exit 2).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of tables.")
def command(model, input_shape, board, config_path, formats_path, margin, allow_misfit, as_json):
    """Estimate latency per layer and FPGA resources of MODEL on a board."""
    board = load_board(board)
    graph = load_model(model, input_shape=input_shape)
    config = load_config(config_path, board)
    formats = _load_formats(formats_path, graph) if formats_path else None
    est = estimate(graph, board, config, formats, margin=margin)
    if as_json:
        click.echo(json.dumps(est.to_dict(), indent=2))
    else:
        click.echo(render(est))
    if not est.fits and not allow_misfit:
        memory = memory_refusal(est, model, graph)
        if memory is not None:  # the same refusal as compile's
            raise ConfigError(f"{memory} (or pass --allow-misfit to only report)")
        pct = est.resources.pct()
        over = ", ".join(f"{r} {pct[r]:.0f}%" for r in est.resources.over(margin))
        raise ConfigError(
            f"vec_size={config.vec_size}, lane_num={config.lane_num}, conv_gp_size_x={config.conv_gp_size_x} "
            f"does not fit board {board.name} ({over} of the device, limit {100 * (1 - margin):.0f}%); "
            f"lower lane_num or vec_size, or pass --allow-misfit to only report")


def render(est) -> str:
    c = est.config
    lines = [
        f"board {est.board.name} ({est.board.device}), {est.fmax_mhz:.0f} MHz, "
        f"{est.board.mem_bandwidth_gbs:.1f} GB/s peak ({est.bandwidth_gbs:.1f} GB/s sustained in the model)",
        f"config vec_size={c.vec_size} lane_num={c.lane_num} conv_gp_size_x={c.conv_gp_size_x} "
        f"fc_batch={c.fc_batch}; data {est.widths.mult_bits}-bit",
        f"batch: 1 image; dense layers per image with fc_batch={c.fc_batch} images per weight pass",
        "",
        f"{'layer':24s} {'kind':7s} {'cycles':>12s} {'ms':>9s} {'bound':>8s} {'GOPS':>8s} {'ops/byte':>9s}",
    ]
    for layer in est.layers:
        ai = "-" if layer.bytes == 0 else f"{layer.intensity:.1f}"
        lines.append(f"{layer.name[:24]:24s} {layer.kind:7s} {layer.cycles:12.0f} {layer.ms:9.3f} {layer.bound:>8s} "
                     f"{layer.gops:8.1f} {ai:>9s}")
    lines += [
        f"{'total':24s} {'':7s} {est.total_cycles:12.0f} {est.total_ms:9.3f} {'':>8s} {est.gops:8.1f}",
        f"roofline: compute roof {est.peak_gops:.0f} GOPS, memory roof {est.bandwidth_gbs:.1f} GB/s",
        "",
        f"{'resource':12s} {'used':>10s} {'available':>10s} {'util %':>8s}",
    ]
    res = est.resources.to_dict()
    for key, label in (("dsp", "DSP blocks"), ("alm", "ALMs"), ("ram_blocks", f"{est.board.ram_kind} blocks")):
        r = res[key]
        lines.append(f"{label:12s} {r['used']:10d} {r['available']:10d} {r['pct']:8.1f}")
    lines.append("per kernel (DSP / ALM / RAM): " + "; ".join(
        f"{k} {v['dsp']}/{v['alm']}/{v['ram_blocks']}" for k, v in res["kernels"].items())
        + f"; BSP {res['bsp']['dsp']}/{res['bsp']['alm']}/{res['bsp']['ram_blocks']}")
    lines.append(_ports_line(est))
    lines.append(_packing_line(est.resources.dsp_packing))
    if est.memory is not None:
        lines.append(est.memory.describe())
    if est.fits:
        lines.append(f"FITS (margin {est.margin:.0%})")
    else:
        lines.append(f"DOES NOT FIT (margin {est.margin:.0%}): {', '.join(est.over())}")
    return "\n".join(lines)


def _ports_line(est) -> str:
    """Global-memory ports per kernel as the resource model prices them (wide = one vector or
    table access, narrow = one element); modelled: what aoc builds is not checked here."""
    from ..hw.arch import GENERATED, PIPECNN
    from ..hw.resources import lsus

    arch = {"generated": GENERATED, "pipecnn": PIPECNN}.get(est.arch)
    if arch is None:
        return ""
    c, buffers = est.config, est.resources.buffers
    ports = [(k, lsus(k, arch, c.vec_size, c.lane_num, buffers)) for k in est.resources.kernels if k != "channels"]
    return "memory ports, wide + narrow (modelled): " + "; ".join(f"{k} {w}+{n}" for k, (w, n) in ports)


def _packing_line(facts: dict | None) -> str:
    """conv_core's multiply mode and whether the DSP figure behind it is an estimate."""
    if not facts:
        return ""
    how = "estimate" if facts["estimate"] else "sourced"
    if facts["mode"] == "pair":
        mode = (f"two products per 18-bit multiplier (weights <= {facts['w_bits']} bits, "
                f"shift {facts['shift']}, split every {facts['group']} products)")
    else:
        mode = "none (one product per multiplier)"
    n = facts["products_per_dsp"]
    line = (f"DSP packing: {mode}; {n} product{'s' if n != 1 else ''} per DSP block "
            f"(board {facts['figure']}, {how})")
    if "weight_bits" in facts:  # hw/widths.py narrow-weight mode
        line += (f"; weights {facts['weight_bits']}-bit in conv_core (narrow-weight mode): priced as the "
                 "16-bit multiply, no DSP mode below 18 bits holds a 16-bit operand")
    return line
