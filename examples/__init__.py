"""Example networks and data for cnn2gate (not part of the installed package)."""
