"""Conversions between wire formats and numpy tensors."""
