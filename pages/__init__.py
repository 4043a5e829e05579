"""Gradio pages of CIT Explorer: one module per tab; figures.py builds plots from plain data."""
