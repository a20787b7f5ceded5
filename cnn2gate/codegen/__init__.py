"""Code generation: a quantized graph -> an Intel FPGA OpenCL project (docs/generated-project.md)."""
from .plan import HwParams, Plan, make_plan
from .project import compile_project, default_input, project_files
from .serialize import load_model

__all__ = ["compile_project", "default_input", "project_files", "make_plan", "Plan", "HwParams", "load_model"]
