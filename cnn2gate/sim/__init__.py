"""cnn2gate.sim"""
