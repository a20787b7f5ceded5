import webbrowser

import click

from ..report import build_report


@click.command("report")
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@click.option("--open-ok", is_flag=True,
              help="Also open report.html in the desktop's web browser when there is one (no error when there is not).")
def command(folder, open_ok):
    """Rebuild report.html and report.json from the facts in FOLDER (a project or explore folder)."""
    html_path, json_path = build_report(folder)
    click.echo(str(html_path))
    click.echo(str(json_path))
    if open_ok and not webbrowser.open(html_path.resolve().as_uri()):
        click.echo("note: no web browser available; open the file above by hand", err=True)
