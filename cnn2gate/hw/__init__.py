"""cnn2gate.hw"""
