"""cfbench: evaluation and benchmarking of blind face restoration, built around CodeFormer."""

__version__ = "0.1.0"
