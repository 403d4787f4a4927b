"""`teachwhy models check`: one short prompt per configured role, with latency and throughput."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from inspect_ai.model import GenerateConfig, Model

from teachwhy.config import ROLES, ExperimentConfig
from teachwhy.errors import UserError
from teachwhy.models.roles import provider_error, role_model

CHECK_PROMPT = "Reply with one short sentence: what is the capital of France?"


@dataclass(frozen=True)
class RoleCheck:
    """The outcome of checking one role: either a reply with timings, or a one-line error."""

    role: str
    model: str
    latency_s: float | None = None
    output_tokens: int | None = None
    reply: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens_per_s(self) -> float | None:
        if self.latency_s is None or not self.output_tokens:
            return None
        return self.output_tokens / self.latency_s


async def _check_one(role: str, model: Model, model_string: str, max_tokens: int) -> RoleCheck:
    start = time.perf_counter()
    output = await model.generate(
        CHECK_PROMPT,
        config=GenerateConfig(max_tokens=max_tokens, temperature=0.0, max_retries=1, timeout=120),
    )
    latency = time.perf_counter() - start
    if output.error:
        raise RuntimeError(output.error)
    tokens = output.usage.output_tokens if output.usage else None
    return RoleCheck(role, model_string, latency, tokens, output.completion.strip())


def check_roles(
    config: ExperimentConfig, roles: tuple[str, ...] = ROLES, *, max_tokens: int = 24
) -> list[RoleCheck]:
    """Send one short prompt to each role's model; a failure becomes that role's one-line error."""
    results: list[RoleCheck] = []
    for role in roles:
        spec = config.models.role(role)
        try:
            model = role_model(config, role, temperature=0.0)
            results.append(asyncio.run(_check_one(role, model, spec.model, max_tokens)))
        except UserError as e:
            results.append(RoleCheck(role, spec.model, error=str(e)))
        except Exception as e:  # reported per role, and the command exits non-zero
            results.append(RoleCheck(role, spec.model, error=str(provider_error(e, role=spec, name=role))))
    return results
