"""The project's error types and the exit codes the CLI maps them to.

Exit codes (docs/cli.md): 0 success, 1 verification mismatch, 2 bad input or usage.
"""


class Cnn2GateError(Exception):
    """Bad input, usage or environment. The message names the file, node or option at fault."""

    exit_code = 2


class ModelError(Cnn2GateError):
    """The ONNX model cannot be read or contains something cnn2gate does not support."""


class FormatsError(Cnn2GateError):
    """A fixed-point formats file does not match the model or holds invalid values."""


class ConfigError(Cnn2GateError):
    """A hardware configuration is unknown, illegal for the model, or does not fit the board."""


class OutputError(Cnn2GateError):
    """The output location cannot be written (exists without --force, read-only, disk full)."""


class VerificationError(Exception):
    """Generated or simulated results disagree with the reference."""

    exit_code = 1


class AccumulatorOverflow(VerificationError):
    """An integer accumulator left the 32-bit range (the hardware would wrap silently)."""
