"""The static HTML report: rates with intervals, tokens vs rate, curves, comparisons, OOD and data tables.

Build it with :func:`build_report` (or ``teachwhy report``) from an experiment's ``summary.json``; the result
opens from disk with no server and no network.
"""

from teachwhy.report.browser import dump_dom, find_browser, screenshot
from teachwhy.report.build import build_report

__all__ = ["build_report", "dump_dom", "find_browser", "screenshot"]
