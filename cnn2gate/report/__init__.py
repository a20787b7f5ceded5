"""cnn2gate.report"""
