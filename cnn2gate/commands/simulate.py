import sys
from pathlib import Path

import click
import numpy as np

from ..atomic import write_file_atomic
from ..batch import as_batch
from ..frontend import load_model
from ..ir.reference import execute, predict
from ..ir.summary import format_table
from ..quant import load_formats, quantize, quantize_params
from ..shards import ShardSet
from ..sim import PATHS, report
from ..sim.batches import shared_object, simulate_batches
from .options import echo_json, input_shape_option, json_option, model_argument, quiet_option
from .quantize import load_array

REPORT_SAMPLES = 256
CALIB_SAMPLES = 256


def save_npy_atomic(path: str, arr: np.ndarray) -> None:
    write_file_atomic(path, lambda f: np.save(f, arr), "output")


def check_output_path(graph, output: str) -> None:
    """One output goes to the file -o names; several go into the directory -o names."""
    n = len(graph.outputs)
    if n == 1:
        if Path(output).is_dir():
            raise click.UsageError(f"-o {output} is a directory; the model has one output: give a .npy file")
        return
    if output.endswith(".npy") or Path(output).is_file():
        raise click.UsageError(f"the model has {n} outputs ({', '.join(graph.outputs)}): -o must name a directory, "
                               f"where output_0.npy .. output_{n - 1}.npy are written, not the file {output}")


def check_shard_output_path(output: str) -> None:
    """A folder of input shards gives a folder of output shards: -o must name a folder."""
    if Path(output).is_file() or output.endswith(".npy"):
        raise click.UsageError(f"--input is a folder of shards: -o must name a folder (one output shard per "
                               f"input shard, same file names), not the file {output}")


class ShardWriter:
    """Takes chunk outputs in input order; writes each shard's outputs once they are complete.

    One output: DIR/<input shard name>. Several: DIR/<input shard stem>/output_<i>.npy.
    Holds at most one shard's outputs (plus a chunk) in memory.
    """

    def __init__(self, graph, shards: ShardSet, output: str):
        self.graph, self.shards, self.output = graph, shards, Path(output)
        self.index = 0  # the shard being filled
        self.parts: list[list[np.ndarray]] = []
        self.held = 0  # samples in self.parts
        self.files: list[dict] = []

    def __call__(self, outs: list[np.ndarray]) -> None:
        while len(outs[0]):
            need = self.shards.lengths[self.index] - self.held
            self.parts.append([o[:need] for o in outs])
            self.held += min(need, len(outs[0]))
            outs = [o[need:] for o in outs]
            if self.held == self.shards.lengths[self.index]:
                self._flush()

    def _flush(self) -> None:
        src = self.shards.paths[self.index]
        arrays = [np.concatenate([p[k] for p in self.parts]) for k in range(len(self.graph.outputs))]
        self.output.mkdir(parents=True, exist_ok=True)
        target = self.output / (src.name if len(arrays) == 1 else src.stem)
        self.files.append({"input": str(src), "output": save_outputs(self.graph, str(target), arrays)})
        self.index += 1
        self.parts, self.held = [], 0


def save_outputs(graph, output: str, arrays: list[np.ndarray]) -> list[str]:
    """Write each graph output in its declared shape; returns the files written."""
    if len(arrays) == 1:
        save_npy_atomic(output, graph.user_outputs(arrays[0]))
        return [output]
    Path(output).mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, y) in enumerate(zip(graph.outputs, arrays)):
        paths.append(str(Path(output) / f"output_{i}.npy"))
        save_npy_atomic(paths[-1], graph.user_output(name, y))
    return paths


@click.command("simulate")
@model_argument
@input_shape_option
@click.option("--input", "input_path", required=True, type=click.Path(), help="Inputs (.npy, batch first), or a "
              "folder of .npy shards (read shard by shard; -o then names a folder of output shards).")
@click.option("--formats", "formats_path", type=click.Path(dir_okay=False), help="Formats file from `quantize`. "
              "Default: quantise now (8-bit, mse) calibrated on the first inputs.")
@click.option("--float", "use_float", is_flag=True, help="Run the float executor instead of the integer design.")
@click.option("--ints", is_flag=True, help="Write the output layer's integers instead of dequantised values.")
@click.option("--report", "show_report", is_flag=True, help="Print per-layer cumulative SQNR, saturation and accumulator bits.")
@click.option("--path", "sim_path", type=click.Choice(PATHS), default="fast", show_default=True,
              help="Simulator implementation (they agree bit for bit).")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--cluster", metavar="ADDRESS", default=None,
              help="Run the batches as tasks on the Ray cluster at ADDRESS (HOST:PORT of the head; `auto`: "
              "RAY_ADDRESS). Same outputs as a local run, bit for bit (docs/cluster.md).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Where to write the outputs: a .npy file; "
              "for a model with several outputs a directory (output_<i>.npy in the model's output order). With a folder "
              "of input shards a folder: one output shard per input shard, same name (several outputs: a folder "
              "<shard name>/ of output_<i>.npy each).")
@json_option
@quiet_option
def command(model, input_shape, input_path, formats_path, use_float, ints, show_report, sim_path, batch_size, cluster,
            output, as_json, quiet):
    """Run MODEL bit-accurately on a batch of inputs (softmax applied on the host, as deployed)."""
    quiet = quiet or as_json
    graph = load_model(model, input_shape=input_shape)
    sharded = Path(input_path).is_dir()
    if sharded:
        x = ShardSet(graph, input_path, "input")
        check_shard_output_path(output)
    else:
        x = as_batch(graph, load_array(input_path, "input"), input_path)
        check_output_path(graph, output)
    if use_float and cluster:
        raise click.UsageError("--cluster runs the integer simulation; --float runs in this process only")
    if use_float and sharded:
        raise click.UsageError("--float reads one .npy file; a folder of shards runs the integer simulation")
    if use_float:
        if len(graph.outputs) == 1:
            files = save_outputs(graph, output, [predict(graph, x)])
        else:
            ref = execute(graph, x)
            files = save_outputs(graph, output, [ref[name] for name in graph.outputs])
        if as_json:
            echo_json({"output": output, "inputs": len(x), "mode": "float", **_files_doc(graph, files)})
        elif not quiet:
            click.echo(f"wrote {output}: float outputs for {len(x)} inputs", err=True)
        return
    if formats_path:
        formats = load_formats(formats_path, graph)
    else:
        if not quiet:
            click.echo(f"note: no --formats given; quantising (8-bit, mse) calibrated on the first "
                       f"{min(len(x), CALIB_SAMPLES)} inputs", err=True)
        formats = quantize(graph, x[:CALIB_SAMPLES])
    qg = quantize_params(graph, formats)
    n_chunks = -(-len(x) // batch_size)
    writer = ShardWriter(graph, x, output) if sharded else None
    executor = None
    if cluster:
        # Imported here: without --cluster nothing about Ray is loaded.
        from ..executor import RayExecutor

        executor = RayExecutor(cluster, shared_object(graph, qg, sim_path, ints))
    try:
        if n_chunks > 1 and not quiet:
            with click.progressbar(length=n_chunks, label="simulating", file=sys.stderr) as bar:
                res = simulate_batches(graph, qg, x, batch_size=batch_size, path=sim_path, ints=ints,
                                       executor=executor, progress=bar.update, on_outputs=writer)
        else:
            res = simulate_batches(graph, qg, x, batch_size=batch_size, path=sim_path, ints=ints, executor=executor,
                                   on_outputs=writer)
    finally:
        if executor is not None:
            executor.close()
    warnings = res.warnings
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if sharded:
        files = [f for shard in writer.files for f in shard["output"]]
    else:
        files = save_outputs(graph, output, res.all_outputs)
    rows = report(graph, qg, x[:REPORT_SAMPLES], path=sim_path) if show_report else None
    if as_json:
        echo_json({"output": output, "inputs": len(x), "mode": "integer" if ints else "dequantised",
                   "warnings": warnings, "report": rows, "report_inputs": min(len(x), REPORT_SAMPLES),
                   **({"shards": writer.files} if sharded else _files_doc(graph, files))})
        return
    if not quiet:
        where = f"{len(writer.files)} output shards in {output}" if sharded else output
        click.echo(f"wrote {where}: {'integer' if ints else 'dequantised'} outputs for {len(x)} inputs", err=True)
    if show_report:
        table = [[r["name"], r["kind"], r["format"], r.get("weight_format", ""), f"{r['sqnr_db']:.1f}",
                  f"{r['sat_low'] + r['sat_high']}/{r['outputs']}", r.get("acc_bits", ""), r.get("bound_bits", "")]
                 for r in rows]
        click.echo(format_table(table, ["layer", "kind", "output", "weights", "cumulative SQNR dB", "saturated",
                                        "acc bits", "worst bits"]))
        click.echo("cumulative SQNR: the simulated integer network against the float network at each layer's "
                   "output, with the error of every earlier layer included (each format's own SQNR is `quantize`'s)")
        if len(x) > REPORT_SAMPLES:
            click.echo(f"(report over the first {REPORT_SAMPLES} inputs)")


def _files_doc(graph, files: list[str]) -> dict:
    """The --json entry naming each output's file; absent for a single output."""
    if len(files) == 1:
        return {}
    return {"outputs": [{"layer": name, "file": f} for name, f in zip(graph.outputs, files)]}
