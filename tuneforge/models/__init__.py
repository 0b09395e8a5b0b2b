"""Models built from the cell registry, behind one registry of model kinds."""

from tuneforge.models.registry import MODELS, build_model, config_from_dict, make_config
from tuneforge.models.sequence import ModelConfig, SequenceModel

__all__ = [
    "MODELS",
    "ModelConfig",
    "SequenceModel",
    "build_model",
    "config_from_dict",
    "make_config",
]
