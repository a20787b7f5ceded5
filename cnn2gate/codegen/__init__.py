"""Code generation: a plan of a quantized graph -> the files of an Intel FPGA OpenCL project
(docs/generated-project.md). The whole compile is cnn2gate.pipeline.compile_project."""
from .plan import Plan, make_plan
from .project import board_ident, project_files, write_tree
from .serialize import load_model

__all__ = ["project_files", "board_ident", "write_tree", "make_plan", "Plan", "load_model"]
