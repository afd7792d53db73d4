"""Datasets. For now: the demo faces bundled inside the package."""
