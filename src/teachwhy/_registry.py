"""Inspect entry point: importing this module registers teachwhy's tasks and model providers by name."""

from teachwhy.evals.tasks import blackmail, framing, honeypots, research_sabotage  # the honeypot tasks
from teachwhy.models.provider import embedded as embedded  # the `embedded/...` model provider

__all__ = ["blackmail", "embedded", "framing", "honeypots", "research_sabotage"]
