import sys
from pathlib import Path

import click
import numpy as np

from ..batch import as_batch
from ..errors import Cnn2GateError, OutputError
from ..frontend import load_model
from ..hostmem import check_calibration
from ..ir.summary import format_table
from ..quant import METHODS, quantize
from ..shards import ShardSet
from .options import echo_json, input_shape_option, json_option, model_argument, quiet_option


def load_array(path: str, what: str) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise Cnn2GateError(f"{path}: no such {what} file") from None
    except (OSError, ValueError) as err:
        # numpy takes any file without the .npy magic for a pickle and suggests loading it
        # unsafely; say what it is instead
        why = "not a .npy file (pickled Python objects are refused)" if "pickle" in str(err) else str(err)
        raise Cnn2GateError(f"{path}: cannot read {what} as a .npy array: {why}") from None
    if not np.issubdtype(x.dtype, np.number):
        raise Cnn2GateError(f"{path}: {what} must be numeric, got dtype {x.dtype}")
    return x


def _calibration_batches(graph, data) -> int:
    """How many float batches calibration runs (the progress bar's length); 1 for the synthetic set."""
    if data is None:
        return 1
    from ..quant.calibrate import batch_size

    return -(-len(data) // batch_size(graph, len(data)))


@click.command("quantize")
@model_argument
@input_shape_option
@click.option("--calib", type=click.Path(), help="Calibration inputs (.npy, batch first), or a folder of .npy "
              "shards (read a batch at a time). Default: a synthetic set.")
@click.option("--bits", type=click.IntRange(2, 16), default=8, show_default=True, help="Activation (and input) bits.")
@click.option("--weight-bits", type=click.IntRange(2, 16), default=None, help="Weight bits (default: --bits).")
@click.option("--method", type=click.Choice(METHODS), default="mse", show_default=True, help="How fractional bits are chosen.")
@click.option("--cluster", metavar="ADDRESS", default=None,
              help="Run the float calibration batches as tasks on the Ray cluster at ADDRESS (HOST:PORT of the "
              "head; `auto`: RAY_ADDRESS). Same formats file as a local run (docs/cluster.md).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Formats file to write (JSON).")
@json_option
@quiet_option
def command(model, input_shape, calib, bits, weight_bits, method, cluster, output, as_json, quiet):
    """Choose per-layer fixed-point formats for MODEL and write them to a formats file."""
    graph = load_model(model, input_shape=input_shape)
    data = None
    if calib is not None:
        if Path(calib).is_dir():
            data = ShardSet(graph, calib, "calibration")  # the same formats as the concatenated shards
        else:
            data = as_batch(graph, load_array(calib, "calibration"), calib)
    if data is None or not cluster:  # the float batches run here (the synthetic set is made here)
        check_calibration(model, graph, None if data is None else len(data))
    if data is None and not (quiet or as_json):
        click.echo("note: no --calib given; calibrating on a synthetic normal(0, 1) set (recorded in the file)", err=True)
    executor = None
    if cluster:
        # Imported here: without --cluster nothing about Ray is loaded.
        from ..executor import RayExecutor

        executor = RayExecutor(cluster, graph)
    n_batches = _calibration_batches(graph, data)
    try:
        if n_batches > 1 and not (quiet or as_json):
            with click.progressbar(length=n_batches, label="calibrating", file=sys.stderr) as bar:
                formats = quantize(graph, data, bits=bits, method=method, weight_bits=weight_bits,
                                   executor=executor, progress=bar.update)
        else:
            formats = quantize(graph, data, bits=bits, method=method, weight_bits=weight_bits, executor=executor)
    finally:
        if executor is not None:
            executor.close()
    try:
        formats.to_json(output)
    except OSError as err:
        raise OutputError(f"{output}: cannot write formats file: {err}") from None
    if as_json:
        echo_json(formats.to_dict())
        return
    if quiet:
        return
    rows = [["(input)", "", str(formats.input), "", ""]]
    for layer in graph.layers:
        lf = formats.layers[layer.name]
        rows.append([layer.name, layer.kind, str(lf.out), str(lf.weight or ""), f"{lf.stats.get('sqnr_db', '')}"])
    click.echo(format_table(rows, ["layer", "kind", "output", "weights", "own SQNR dB"]))
    click.echo("own SQNR: each layer's float output rounded to its own format alone, on the calibration data; "
               "it does not include the error of earlier layers (the cumulative SQNR is `simulate --report`'s)")
    click.echo(f"\nwrote {output} ({method}, {bits}-bit activations, {weight_bits or bits}-bit weights)")
