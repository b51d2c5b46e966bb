"""mafs-bench: robustness benchmarking for image-text fusion models (MA-AFS and fixed-fusion baselines)."""

__version__ = "0.1.0"
