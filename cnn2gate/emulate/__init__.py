"""cnn2gate.emulate"""
