"""Checkpoints in one place: their format (format.py: fields, version, atomic writing, reading without running code),
the checks of their fields (checks.py) and the network rebuilt from one (rebuild.py). Above models and config, below
engine: models and data never import it, and it never imports engine."""

from .checks import require
from .format import FORMAT_VERSION, is_bare, load_checkpoint, save_checkpoint
from .rebuild import Rebuilt, load_model_state, rebuild

__all__ = ["FORMAT_VERSION", "Rebuilt", "is_bare", "load_checkpoint", "load_model_state", "rebuild", "require",
           "save_checkpoint"]
