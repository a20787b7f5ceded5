from pathlib import Path

import click
import numpy as np

from ..batch import as_batch
from ..codegen.serialize import load_model
from ..emulate import DEFAULT_TIMEOUT, EMULATION_CHANNEL_DEPTH, emulate_project
from ..errors import Cnn2GateError, VerificationError
from ..pipeline import record_emulation
from .options import echo_json, json_option, quiet_option
from .quantize import load_array


def _load_input(project, input_path) -> np.ndarray:
    """--input as float64, checked against the project's model (its declared input layout)
    so that errors name the file."""
    x = load_array(input_path, "input").astype(np.float64)
    if (Path(project) / "model" / "model.json").is_file():  # otherwise emulate_project explains what is missing
        graph, _ = load_model(project)
        x = as_batch(graph, x, input_path)
    return x


@click.command("emulate")
@click.argument("project", type=click.Path(file_okay=False, exists=True))
@click.option("--input", "input_path", type=click.Path(dir_okay=False),
              help="Float inputs (.npy, batch first); the simulator gives the reference. Default: the golden input.")
@click.option("--labels", type=click.Path(dir_okay=False), help="Class labels (.npy) for --input: also print top-1 accuracy.")
@click.option("--timeout", type=click.FloatRange(min=1), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds before the emulated run is killed (a channel deadlock hangs for ever).")
@click.option("--dump", "dump_dir", type=click.Path(file_okay=False),
              help="Write every layer's output here and report the first layer that differs.")
@click.option("--channel-depth", type=click.IntRange(min=0), default=EMULATION_CHANNEL_DEPTH, show_default=True,
              help="Channel depth of the emulation build (0: the generated hardware depth). Results do not depend on it.")
@json_option
@quiet_option
def command(project, input_path, labels, timeout, dump_dir, channel_depth, as_json, quiet):
    """Run PROJECT in the Intel FPGA emulator and compare every output with the simulator."""
    x = _load_input(project, input_path) if input_path else None
    if labels and x is None:
        raise Cnn2GateError("--labels needs --input")
    res = emulate_project(project, x, timeout=timeout, dump_dir=dump_dir, channel_depth=channel_depth or None)
    show = not (quiet or as_json)
    if res.layer_ms and show:
        click.echo(f"{'layer':40s} {'ms/image':>10s}")
        for name, ms in res.layer_ms.items():
            click.echo(f"{name:40s} {ms:10.3f}")
        click.echo(f"{'(wall clock per image)':40s} {res.wall_ms_per_image:10.3f}")
    acc = None
    if labels:
        if res.per_output:
            raise Cnn2GateError(f"--labels needs a model with one output; this one has {len(res.per_output)}")
        y = load_array(labels, "labels").reshape(-1)
        if len(y) != res.images:
            raise Cnn2GateError(f"{labels}: {len(y)} labels for {res.images} inputs")
        acc = float(np.mean(res.outputs.reshape(res.images, -1).argmax(axis=1) == y))
        if show:
            click.echo(f"top-1 accuracy (emulated): {acc * 100:.2f} %")
    fact = record_emulation(project, res, accuracy=acc)
    if as_json:
        echo_json(fact)
    if dump_dir and res.layer_mismatches and show:
        bad = [name for name, n in res.layer_mismatches.items() if n]
        click.echo(f"layer dumps in {dump_dir}: {len(res.layer_mismatches) - len(bad)} of "
                   f"{len(res.layer_mismatches)} layers bit-exact" + (f"; first that differs: {bad[0]}" if bad else ""))
    if not res.passed:
        raise VerificationError(res.summary())
    if show:
        click.echo(res.summary())
