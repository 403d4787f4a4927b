"""teachwhy: teach a model the reasons behind its values, then measure whether it learned them."""

__version__ = "0.1.0"
