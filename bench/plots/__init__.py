"""Figures of campaigns: one module per figure, `catalogue` to pick those that apply.

A package (not a namespace directory) so that packaging finds it; it imports nothing itself, so
`import bench.plots.data` does not load every figure.
"""
