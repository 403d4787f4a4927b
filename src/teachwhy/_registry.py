"""Inspect entry point: importing this module registers teachwhy's tasks and model providers by name."""
