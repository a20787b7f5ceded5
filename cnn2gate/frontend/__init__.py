"""cnn2gate.frontend"""
