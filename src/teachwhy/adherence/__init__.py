"""Constitution adherence: per principle, held-out situations (generated once and frozen) answered by the
target and graded by the judge.

``situations`` (generate, freeze, load), ``task`` (``teachwhy/adherence`` and the grader), ``results`` (per
principle and per section, Wilson intervals), ``run`` (one Python call). The CLI is in
:mod:`teachwhy.assessment.commands`.
"""
