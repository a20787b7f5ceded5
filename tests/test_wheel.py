"""The built wheel carries templates/ and boards/: install it in a fresh venv outside
the repository and use it from a folder that is not the checkout."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_templates_and_boards(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(dist), str(ROOT)],
                   check=True, capture_output=True, cwd=ROOT)
    wheel = next(dist.glob("cnn2gate-*.whl"))
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], check=True,
                           capture_output=True, text=True).stdout
    assert "cnn2gate/boards/a10.toml" in names
    assert "cnn2gate/templates/" in names and ".j2" in names

    # A fresh venv that sees this venv's third-party packages (a plain path entry:
    # the editable install's import hook in that folder is not activated) but not the checkout.
    venv = tmp_path / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cli = str(venv / "bin" / "cnn2gate")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import cnn2gate; print(cnn2gate.__file__)"],
                           check=True, capture_output=True, text=True, cwd=work, env=env).stdout
    assert str(ROOT) not in where, f"the checkout was imported instead of the wheel: {where}"

    boards = subprocess.run([cli, "boards"], check=True, capture_output=True, text=True, cwd=work, env=env).stdout
    assert "a10" in boards and "de1soc" in boards

    model = ROOT / "examples" / "digits" / "digits_cnn.onnx"
    out = work / "proj"
    subprocess.run([cli, "compile", str(model), "--board", "a10", "-o", str(out)],
                   check=True, capture_output=True, text=True, cwd=work, env=env)
    assert any((out / "device").glob("*.cl"))
    assert (out / "Makefile").is_file()


def test_every_subpackage_is_listed_for_the_wheel():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in (ROOT / "cnn2gate").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
