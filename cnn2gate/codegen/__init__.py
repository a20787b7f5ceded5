"""cnn2gate.codegen"""
