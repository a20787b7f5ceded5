"""Command-line interface: parses options and calls the Python API, nothing more.

Each command lives in `cnn2gate/commands/<name>.py` and exposes a click command
named `command`. Errors: the project's own exceptions become a one-line message on
stderr and the exit code documented in docs/cli.md (1 verification, 2 bad input).
"""
from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .errors import Cnn2GateError, VerificationError

#: command modules under cnn2gate.commands, in help order
COMMANDS = ["inspect", "boards", "estimate", "report", "quantize", "simulate", "compile", "emulate", "explore"]


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (Cnn2GateError, VerificationError) as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnn2gate")
def main() -> None:
    """Compile trained CNNs (ONNX) into Intel FPGA OpenCL projects."""


for _name in COMMANDS:
    main.add_command(importlib.import_module(f"cnn2gate.commands.{_name}").command)
