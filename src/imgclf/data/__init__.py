"""Datasets: every source becomes uint8 N×C×H×W tensors + labels + class names (see `load_dataset`)."""

from .registry import NAMED, default_data_dir, load_dataset, locate
from .split import Dataset, Split, channel_stats

__all__ = ["NAMED", "Dataset", "Split", "channel_stats", "default_data_dir", "load_dataset", "locate"]
