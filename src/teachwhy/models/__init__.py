"""Model roles on Inspect's model API, and the embedded offline model."""

from teachwhy.models.embedded import cache_dir, embedded_model_dir, materialise_embedded
from teachwhy.models.roles import EMBEDDED, inspect_model_args, provider_error, resolve_model, role_model

__all__ = [
    "EMBEDDED",
    "cache_dir",
    "embedded_model_dir",
    "inspect_model_args",
    "materialise_embedded",
    "provider_error",
    "resolve_model",
    "role_model",
]
