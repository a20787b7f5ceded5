"""Finding the Intel FPGA Emulation Platform for OpenCL and a C++ compiler."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..atomic import write_file_atomic
from ..errors import Cnn2GateError

EMU_LIB = "libintelocl_emu.so"


class RuntimeMissing(Cnn2GateError):
    """The emulation runtime or the host toolchain is not installed."""


def cache_dir() -> Path:
    """~/.cache/cnn2gate (or $XDG_CACHE_HOME/cnn2gate); a private temporary folder when not writable."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "cnn2gate"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"cnn2gate-cache-{os.getuid()}"


def _icd_dir_has_emulator(path: str) -> bool:
    d = Path(path)
    for icd in sorted(d.glob("*.icd")) if d.is_dir() else []:
        try:
            lib = icd.read_text().strip()
        except OSError:
            continue
        if lib.endswith(EMU_LIB) and Path(lib).exists():
            return True
    return False


def venv_emulator_lib() -> Path:
    return Path(sys.prefix) / "lib" / EMU_LIB


def opencl_env() -> dict[str, str]:
    """Environment for the host: OCL_ICD_VENDORS pointing at the emulator.

    An OCL_ICD_VENDORS already set is used as is; otherwise the runtime installed
    in the running Python's environment is registered in a private ICD folder.
    """
    env = dict(os.environ)
    if env.get("OCL_ICD_VENDORS"):
        return env
    lib = venv_emulator_lib()
    if not lib.exists():
        raise RuntimeMissing(
            f"Intel FPGA Emulation Platform for OpenCL not found ({lib} missing and OCL_ICD_VENDORS unset); "
            "run `make setup` (installs requirements-emulator.txt) or set OCL_ICD_VENDORS"
        )
    icd = cache_dir() / "icd"
    icd.mkdir(parents=True, exist_ok=True)
    f = icd / "intel_fpga_emu.icd"
    if not f.exists() or f.read_text().strip() != str(lib):
        write_file_atomic(f, f"{lib}\n", "emulator ICD file")
    env["OCL_ICD_VENDORS"] = str(icd)
    return env


def compiler() -> str:
    cxx = os.environ.get("CXX") or "g++"
    path = shutil.which(cxx)
    if not path:
        raise RuntimeMissing(f"C++ compiler {cxx!r} not found; install g++ (run `make setup`)")
    return path


def emulator_available() -> tuple[bool, str]:
    """(available, reason when not): for skipping tests and clear messages."""
    vendors = os.environ.get("OCL_ICD_VENDORS")
    if vendors and not _icd_dir_has_emulator(vendors):
        return False, f"OCL_ICD_VENDORS={vendors} has no .icd file naming an existing {EMU_LIB}"
    if not vendors and not venv_emulator_lib().exists():
        return False, f"{venv_emulator_lib()} missing; run `make setup`"
    if not shutil.which(os.environ.get("CXX") or "g++"):
        return False, "g++ not found"
    if not Path("/usr/include/CL/cl.h").exists() and not os.environ.get("CPATH"):
        return False, "OpenCL headers (/usr/include/CL/cl.h) missing; install opencl-headers"
    return True, ""
