import json

import click

from ..hw import list_boards, load_board


@click.command("boards")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (every board key, sources included).")
def command(as_json):
    """List the bundled boards: device, DSPs, ALMs, RAM blocks, bandwidth, clock."""
    boards = [load_board(name) for name in list_boards()]
    if as_json:
        click.echo(json.dumps([b.to_dict() for b in boards], indent=2))
        return
    head = f"{'board':10s} {'device':18s} {'family':11s} {'DSPs':>6s} {'ALMs':>8s} {'RAM blocks':>11s} " \
           f"{'GB/s':>6s} {'fmax MHz':>9s}"
    click.echo(head)
    click.echo("-" * len(head))
    for b in boards:
        ram = f"{b.ram_blocks} {b.ram_kind}"
        click.echo(f"{b.name:10s} {b.device:18s} {b.family:11s} {b.dsp_blocks:6d} {b.alms:8d} {ram:>11s} "
                   f"{b.mem_bandwidth_gbs:6.1f} {b.fmax_mhz:9.0f}")
    click.echo("\nFigures marked as estimates in a board's [sources]: see `cnn2gate boards --json` (key 'estimated').")
