"""Layer IR: typed layers in a DAG, plus a float reference executor."""
from .layers import (  # noqa: F401
    ACTIVATIONS, GRAPH_INPUT, LAYER_KINDS, LRN, Add, Concat, Conv, Dense, Graph, Layer, Pool, Shape,
)
