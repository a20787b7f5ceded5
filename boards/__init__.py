"""Board description files (shipped as package data)."""
