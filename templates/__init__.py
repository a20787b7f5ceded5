"""Jinja2 templates for the generated project (shipped as package data)."""
