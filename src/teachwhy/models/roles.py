"""Model roles (generator, target, judge, auditor) resolved to Inspect models.

A role's model string is Inspect's (``openai-api/<service>/<model>``, ``vllm/…``, ``anthropic/…``, ``hf/…``,
``mockllm/model``) or ``embedded``, the bundled model, materialised on first use and served by teachwhy's own
``embedded`` provider with continuous batching. Provider failures a user can fix (a missing API key, a server
that does not answer) are turned into one-line :class:`~teachwhy.errors.UserError` messages that name the
environment variable or the URL.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from inspect_ai.model import GenerateConfig, Model, get_model

from teachwhy.config import ExperimentConfig, RoleModel
from teachwhy.errors import UserError
from teachwhy.models.embedded import EMBEDDED_NAME

EMBEDDED = "embedded"


def inspect_model_args(role: RoleModel, *, temperature: float | None = None) -> tuple[str, dict[str, Any]]:
    """The Inspect model name and ``model_args`` for a role.

    ``embedded`` maps to ``embedded/SmolLM2-135M-Instruct``, teachwhy's own provider (see
    :mod:`teachwhy.models.provider`), which materialises the model when it is first created.

    Args:
        role: the role's configuration.
        temperature: the temperature the role will mostly be sampled at. Only an explicit ``hf/...`` model
            needs it: a temperature of 0 sets ``do_sample=False`` there (Inspect's ``hf`` provider samples by
            default and rejects temperature 0 otherwise). The embedded provider honours each request's own
            temperature.
    """
    args = dict(role.args)
    if role.model == EMBEDDED:
        return f"embedded/{EMBEDDED_NAME}", args
    if role.model.startswith("hf/") and temperature == 0:
        args.setdefault("do_sample", False)
    return role.model, args


def resolve_model(
    role: RoleModel,
    *,
    name: str = "model",
    temperature: float | None = None,
    config: GenerateConfig | None = None,
    memoize: bool = True,
) -> Model:
    """An Inspect :class:`Model` for a role.

    Args:
        role: the role's configuration (model string, base URL, API key variable, provider args).
        name: the role's name, used in error messages.
        temperature: the default temperature bound to the model (a request's own setting still wins);
            see also :func:`inspect_model_args`.
        config: default generation settings bound to the model.
        memoize: reuse Inspect's cached instance for identical arguments; pass ``False`` for a model the
            caller closes when done (e.g. one training checkpoint, so its weights are freed).

    Raises:
        UserError: the provider cannot be set up (missing key, unknown provider, missing package).
    """
    model_name, args = inspect_model_args(role, temperature=temperature)
    api_key = None
    if role.api_key_env:
        api_key = os.environ.get(role.api_key_env)
        if not api_key:
            raise UserError(
                f"environment variable {role.api_key_env} is not set (API key for {role.model})",
                key=f"models.{name}.api_key_env",
            )
    config = config or GenerateConfig()
    if role.max_connections is not None:
        config = config.merge(GenerateConfig(max_connections=role.max_connections))
    if temperature is not None:
        config = config.merge(GenerateConfig(temperature=temperature))
    try:
        return get_model(
            model_name, config=config, base_url=role.base_url, api_key=api_key, memoize=memoize, **args
        )
    except UserError:
        raise
    except Exception as e:  # provider construction errors are user-fixable set-up problems
        raise provider_error(e, role=role, name=name) from None


def role_model(config: ExperimentConfig, role: str, *, temperature: float | None = None) -> Model:
    """The Inspect model for ``role`` as configured in ``config``."""
    gen = config.generation
    # the timeout is per attempt: a request that hangs is abandoned and retried, up to max_retries
    settings = GenerateConfig(
        max_retries=gen.max_retries, attempt_timeout=gen.timeout, max_connections=gen.max_connections
    )
    return resolve_model(config.models.role(role), name=role, temperature=temperature, config=settings)


_ENV_VAR = re.compile(r"\b[A-Z][A-Z0-9_]*_(?:API_KEY|BASE_URL|TOKEN)\b")


def provider_error(error: BaseException, *, role: RoleModel, name: str) -> UserError:
    """A one-line, actionable message for a failure to create or call a model."""
    text = " ".join(str(error).split())
    where = f"models.{name}"
    env_vars = sorted(set(_ENV_VAR.findall(text)))
    if env_vars and ("API_KEY" in text or "BASE_URL" in text or "environment" in text.lower()):
        return UserError(f"{role.model}: set the environment variable {' or '.join(env_vars)}", key=where)
    lowered = text.lower()
    if isinstance(error, ModuleNotFoundError) or "pip install" in lowered or "requires" in lowered:
        package = getattr(error, "name", None)
        hint = f"pip install {package}" if package else text
        return UserError(f"{role.model}: a package it needs is missing ({hint})", key=where)
    if _is_connection_error(error):
        url = role.base_url or _url_in(text) or "its server"
        return UserError(f"{role.model}: cannot reach {url} (is the server running?)", key=where)
    if "model" in lowered and ("not found" in lowered or "unknown" in lowered or "invalid" in lowered):
        return UserError(f"{role.model}: {text}", key=where)
    return UserError(f"{role.model}: {type(error).__name__}: {text}", key=where)


def _url_in(text: str) -> str | None:
    found = re.search(r"https?://[^\s'\")]+", text)
    return found.group(0) if found else None


def _is_connection_error(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        name = type(seen).__name__
        if isinstance(seen, ConnectionError | TimeoutError) or "Connect" in name or "Timeout" in name:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def open_weights(role: RoleModel) -> str | None:
    """The open weights behind a role — a local folder or a Hugging Face id — or ``None`` for an API model.

    Training fine-tunes these weights and token counting loads their tokenizer. Understood: ``embedded``,
    ``embedded/<name or folder>``, ``hf/…``, ``vllm/…``, ``sglang/…`` and any role with ``args.model_path``.
    """
    if role.model == EMBEDDED:
        from teachwhy.models.embedded import materialise_embedded

        return str(materialise_embedded())
    if role.args.get("model_path"):
        return str(Path(str(role.args["model_path"])).expanduser())
    provider, _, rest = role.model.partition("/")
    if provider == "embedded" and rest:
        from teachwhy.models.loaded import model_folder

        return str(model_folder(rest))
    if provider in ("hf", "vllm", "sglang") and rest and rest != "local":
        local = Path(rest).expanduser()
        return str(local.resolve()) if local.exists() else rest
    return None
