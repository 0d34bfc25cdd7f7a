"""tuneforge.config: the typed job spec, loaded from YAML with `key.sub=value` overrides.

This package is the leaf of the dependency graph: it imports nothing else from tuneforge.
"""

from tuneforge.config.errors import OVERRIDE_SOURCE, ConfigError
from tuneforge.config.loader import (
    config_from_dict,
    config_hash,
    field_descriptions,
    load_config,
    save_config,
)
from tuneforge.config.schema import (
    DataConfig,
    DatasetSpec,
    DistributedConfig,
    FreezeMethod,
    FullMethod,
    IA3Method,
    JobConfig,
    LoraMethod,
    MethodConfig,
    ModelConfig,
    PrefixTuningMethod,
    PromptTuningMethod,
    PTuningMethod,
    QLoraMethod,
    RegistryConfig,
    TinyModelConfig,
    TrackingConfig,
    TrainerConfig,
)

__all__ = [
    "OVERRIDE_SOURCE",
    "ConfigError",
    "DataConfig",
    "DatasetSpec",
    "DistributedConfig",
    "FreezeMethod",
    "FullMethod",
    "IA3Method",
    "JobConfig",
    "LoraMethod",
    "MethodConfig",
    "ModelConfig",
    "PTuningMethod",
    "PrefixTuningMethod",
    "PromptTuningMethod",
    "QLoraMethod",
    "RegistryConfig",
    "TinyModelConfig",
    "TrackingConfig",
    "TrainerConfig",
    "config_from_dict",
    "config_hash",
    "field_descriptions",
    "load_config",
    "save_config",
]
