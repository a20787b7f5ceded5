"""cnn2gate.quant"""
