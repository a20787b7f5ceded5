import click
import numpy as np

from ..errors import ConfigError
from ..explore.agents import AGENTS
from ..frontend import load_model
from ..hw import DEFAULT_BOARD, load_board
from .options import echo_json, input_shape_option, json_option, model_argument


def _load_calib(path):
    if path is None:
        return None
    try:
        x = np.load(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--calib {path}: cannot read a .npy array: {err}") from None
    if x.ndim not in (3, 4):
        raise ConfigError(f"--calib {path}: expected (N, C, H, W) or (C, H, W) inputs, got shape {x.shape}")
    return x


def _load_labels(path):
    if path is None:
        return None
    try:
        return np.load(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--labels {path}: cannot read a .npy array: {err}") from None


@click.command("explore")
@model_argument
@input_shape_option
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board name (see `cnn2gate boards`) or a board TOML file.")
@click.option("--agent", type=click.Choice(list(AGENTS)), default=None,
              help="Search agent (default: ppo, after enumerating instead any hardware-only space of at most "
                   "--budget points, or 20,000 without --budget). Giving it always runs that agent.")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="Distinct design points to cost (default 1000).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same result).")
@click.option("--precision", is_flag=True, help="Also choose per-layer weight/activation widths from 2..16 bits (2, 3, 4, 5, 6, 8, 10, 12, 16).")
@click.option("--min-sqnr", type=float, default=None, metavar="DB",
              help="Fidelity bound for --precision: modelled output SQNR in dB (default 30).")
@click.option("--max-accuracy-loss", type=float, default=None, metavar="PCT",
              help="Fidelity bound for --precision instead of --min-sqnr: top-1 accuracy points the quantized "
                   "design may lose against the float model on --calib/--labels (checked with the simulator).")
@click.option("--calib", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="Calibration inputs (.npy, N x C x H x W) for --precision (default: a synthetic set); "
                   "the validation inputs of --max-accuracy-loss.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="Class labels (.npy, N integers) of the --calib inputs, for --max-accuracy-loss.")
@click.option("--uniform-start/--no-uniform-start", default=True, show_default=True,
              help="With --precision: before the agent runs, cost every hardware config at each minimal uniform "
                   "weight/activation width pair that meets the bound and start the search from the best "
                   "(its configurations are not charged to --budget; the start design is evaluation 1).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder (best_config.json, history.csv, summary.json, plots, report.html).")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Processes for costing batches of design points and building the sensitivity model "
                   "[default: all usable cores]. The result does not depend on it.")
@click.option("--cluster", metavar="ADDRESS", default=None,
              help="With --precision: build the sensitivity model, cost the batched agents' batches of design "
                   "points and run the simulator checks as tasks on the "
                   "Ray cluster at ADDRESS (HOST:PORT of the head; `auto`: RAY_ADDRESS). The result does not "
                   "depend on it (docs/cluster.md).")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary table.")
@json_option
def command(model, input_shape, board, agent, budget, seed, precision, min_sqnr, max_accuracy_loss, calib, labels,
            uniform_start, workers, cluster, out_dir, force, quiet, as_json):
    """Search hardware parameters (and optionally per-layer precision) of MODEL for a board."""
    from pathlib import Path

    from ..explore import (DEFAULT_AGENT, DEFAULT_BUDGET, ENUMERATE_MAX_POINTS, ExploreOptions,
                           check_accuracy_request, explore)
    from ..explore.parallel import usable_cores
    from ..explore.progress import BuildBar, ProgressBar
    from ..explore.report import render_summary
    from ..pipeline import write_explore_outputs

    # no --agent: cost a small hardware-only space whole (the exact optimum) rather than search it
    enumerate_up_to = 0 if agent is not None else (budget or ENUMERATE_MAX_POINTS)
    agent = agent or DEFAULT_AGENT
    budget = budget or DEFAULT_BUDGET
    if Path(out_dir).exists() and not force:
        from ..errors import OutputError

        raise OutputError(f"{out_dir} exists; use --force to overwrite it")
    calib_x = _load_calib(calib) if calib is not None and (precision or max_accuracy_loss is not None) else None
    labels_y = check_accuracy_request(precision=precision, min_sqnr=min_sqnr, max_accuracy_loss=max_accuracy_loss,
                                      calib=calib_x, labels=_load_labels(labels))
    if calib is not None and not precision:
        raise ConfigError("--calib is used by the precision search: add --precision")
    if cluster and not precision:
        raise ConfigError("--cluster runs the precision search's float and simulator work: add --precision "
                          "(a hardware-only search is costed locally, with --workers)")
    board = load_board(board)
    graph = load_model(model, input_shape=input_shape)
    bar = None if (quiet or as_json) else ProgressBar(budget)
    if bar is not None and precision:
        from ..explore.space import PRECISION_BITS, precision_layers

        click.echo(f"building the sensitivity model: {len(precision_layers(graph))} conv/dense layers x 2 roles x "
                   f"{len(PRECISION_BITS)} widths on "
                   + (f"the Ray cluster at {cluster} ..." if cluster else f"{workers or usable_cores()} processes ..."),
                   err=True)
        if uniform_start:
            click.echo("then the uniform-width start: every hardware config at each minimal uniform width pair "
                       "that meets the bound (not charged to the budget; --no-uniform-start skips it)", err=True)
    options = ExploreOptions(agent=agent, budget=budget, seed=seed, precision=precision, min_sqnr=min_sqnr,
                             calib=calib_x, max_accuracy_loss=max_accuracy_loss, labels=labels_y,
                             workers=workers or usable_cores(), enumerate_up_to=enumerate_up_to, cluster=cluster,
                             uniform_start=uniform_start)
    build_bar = BuildBar() if bar is not None and precision else None
    result = explore(graph, board, options, progress=bar, build_progress=build_bar)
    if bar is not None:
        bar.close(result.evaluator)
    write_explore_outputs(result, out_dir, graph=graph, board=board, force=force)
    if as_json:
        echo_json(result.summary())
    elif not quiet:
        click.echo(render_summary(result))
        click.echo(f"\nwrote {out_dir}/")
