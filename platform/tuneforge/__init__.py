"""tuneforge: fine-tune LLMs on a Ray cluster (Ray Data -> Ray Train + DeepSpeed ZeRO -> MLflow)."""

__version__ = "0.1.0"
