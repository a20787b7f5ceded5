"""cnn2gate.explore"""
