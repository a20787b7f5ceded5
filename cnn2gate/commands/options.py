"""Options shared by several commands."""
import click

from ..errors import Cnn2GateError


def _parse_shape(ctx, param, value):
    if value is None:
        return None
    try:
        dims = tuple(int(v) for v in value.lower().replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected C,H,W (for example 3,224,224), got {value!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise click.BadParameter(f"dimensions must be positive integers, got {value!r}")
    return dims


model_argument = click.argument("model", type=click.Path(dir_okay=False, path_type=str))

input_shape_option = click.option(
    "--input-shape", callback=_parse_shape, default=None, metavar="C,H,W",
    help="Input shape (without batch) for models whose input has symbolic dimensions.",
)

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one machine-readable JSON document on stdout instead of tables.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress, notes or tables; errors still go to stderr.")


def echo_json(doc) -> None:
    """Strict JSON (NaN and infinities as null, numpy values as numbers), as the facts files."""
    from ..report.facts import dumps

    click.echo(dumps(doc), nl=False)


__all__ = ["Cnn2GateError", "model_argument", "input_shape_option", "json_option", "quiet_option", "echo_json"]
