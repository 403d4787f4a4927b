"""Inspect entry point: importing this module registers teachwhy's tasks and model providers by name."""

from teachwhy.adherence.task import adherence  # constitution adherence on frozen held-out situations
from teachwhy.assessment.task import assessment  # the automated alignment assessment
from teachwhy.evals.tasks import blackmail, framing, honeypots, research_sabotage  # the honeypot tasks
from teachwhy.models.provider import embedded as embedded  # the `embedded/...` model provider

__all__ = ["adherence", "assessment", "blackmail", "embedded", "framing", "honeypots", "research_sabotage"]
