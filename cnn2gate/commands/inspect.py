import json

import click

from ..frontend import load_model
from ..ir.summary import render_summary, summarize
from .options import input_shape_option, model_argument


@click.command("inspect")
@model_argument
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")
def command(model, input_shape, as_json):
    """Show the layers of MODEL: kinds, shapes, parameters and MACs."""
    graph = load_model(model, input_shape=input_shape)
    if as_json:
        click.echo(json.dumps(summarize(graph), indent=2))
    else:
        click.echo(render_summary(graph))
