"""The automated alignment assessment: an auditor model probes the target from seed instructions; a judge
scores each transcript on dimensions. Held out from all training.

``library`` (seeds and dimensions as Markdown files), ``auditor`` and ``simulation`` (the audit loop and the
target's simulated world), ``judge``, ``task`` (``teachwhy/assessment``), ``results``, ``clustered``
(cluster-bootstrap intervals), ``run`` (one Python call), ``commands`` (the CLI).
"""
