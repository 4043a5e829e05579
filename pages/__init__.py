"""Gradio pages of CIT Explorer: one module per tab; figures/ builds every plot from plain data."""
