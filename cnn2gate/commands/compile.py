import click

from ..batch import as_batch
from ..frontend import load_model
from ..hw import DEFAULT_BOARD, estimate, load_board, load_config
from ..hostmem import check_calibration, check_golden
from ..pipeline import check_memory, compile_project
from ..quant import load_formats, quantize
from .options import echo_json, input_shape_option, json_option, model_argument, quiet_option
from .quantize import load_array


@click.command("compile")
@model_argument
@input_shape_option
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Target board (see `cnn2gate boards`).")
@click.option("--formats", "formats_path", type=click.Path(dir_okay=False),
              help="Formats file from `quantize`. Default: quantise now (8-bit, mse).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Hardware config JSON (vec_size, lane_num, conv_gp_size_x, ...). Default: the board's.")
@click.option("--calib", type=click.Path(dir_okay=False),
              help="Calibration inputs (.npy, batch first) when quantising; the first one is also the golden input.")
@click.option("--golden-input", type=click.Path(dir_okay=False),
              help="Inputs (.npy) for the golden files. Default: the first --calib input, else a seeded random image.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Project directory to create.")
@click.option("--force", is_flag=True, help="Replace the output directory if it exists.")
@json_option
@quiet_option
def command(model, input_shape, board, formats_path, config_path, calib, golden_input, output, force, as_json, quiet):
    """Generate the Intel FPGA OpenCL project (kernels, host, weights, golden files) for MODEL."""
    graph = load_model(model, input_shape=input_shape)
    board_info = load_board(board)
    config = load_config(config_path, board_info)
    given = load_formats(formats_path, graph) if formats_path else None
    # before calibration and golden data: a design the board's memory cannot hold is refused as
    # `estimate` refuses it (without --formats, quantize's default 8 bits); compile_project then
    # skips its own check
    check_memory(graph, board_info, config, given, model)
    calib_x = as_batch(graph, load_array(calib, "calibration"), calib) if calib else None
    if given is None:
        check_calibration(model, graph, None if calib_x is None else len(calib_x), formats_option=True)
    check_golden(model, graph)
    if given is not None:
        formats = given
    else:
        if calib_x is None and not (quiet or as_json):
            click.echo("note: no --formats or --calib given; quantising on a synthetic calibration set", err=True)
        formats = quantize(graph, calib_x)
    golden = None
    if golden_input:
        golden = as_batch(graph, load_array(golden_input, "golden input"), golden_input)
    elif calib_x is not None:
        golden = calib_x[:1]
    path = compile_project(graph, formats, board_info, config, output, force=force, golden_input=golden,
                           memory_checked=True)
    est = estimate(graph, board_info, config, formats)
    _warn_if_misfit(est, board_info, config)
    if as_json:
        echo_json({"project": str(path), "board": board_info.name, "config": config.to_dict(),
                   "fits": est.fits, "total_ms": est.total_ms, "report": str(path / "report.html")})
        return
    if quiet:
        return
    click.echo(f"wrote {path} (board {board_info.name}, vec_size={config.vec_size}, lane_num={config.lane_num}, "
               f"conv_gp_size_x={config.conv_gp_size_x})")
    click.echo(f"next: cnn2gate emulate {path}   or see {path}/README.md to build for the board")


def _warn_if_misfit(est, board_info, config) -> None:
    """The project is still written (emulation does not care), but `aoc` would fail to place it."""
    if not est.fits:
        pct = est.resources.pct()
        over = ", ".join(f"{r} {pct[r]:.0f}%" for r in est.resources.over())
        click.echo(f"warning: vec_size={config.vec_size}, lane_num={config.lane_num}, "
                   f"conv_gp_size_x={config.conv_gp_size_x} does not fit board {board_info.name} ({over} of the "
                   f"device in the resource model); `aoc` will fail to place it. See `cnn2gate estimate`, or "
                   f"choose a config with `cnn2gate explore`", err=True)
