"""Layer IR: the layer base and the graph DAG (kinds: cnn2gate/ops/), plus a float reference executor."""
from .layers import ACTIVATIONS, GRAPH_INPUT, Graph, Layer, Shape  # noqa: F401
