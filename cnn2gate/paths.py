"""Where the bundled data lives: templates/ and boards/ at the repository top,
shipped in the wheel as the packages cnn2gate.templates and cnn2gate.boards."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def _data_dir(package: str) -> Path:
    path = Path(str(resources.files(package)))
    if not path.is_dir():
        raise RuntimeError(f"cnn2gate installation is broken: {package} not found at {path}")
    return path


def templates_dir() -> Path:
    return _data_dir("cnn2gate.templates")


def boards_dir() -> Path:
    return _data_dir("cnn2gate.boards")
