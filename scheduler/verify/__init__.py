"""Stage 6, verify: an independent check of a written plan against the public contract.

``plan_checks`` (``verify_plan`` and ``verify_tables``, the entry points, and the order the checks
run in), ``contract`` (check families, tolerances, :class:`Violation`), ``columns`` and
``plan_view`` (the written tables as numpy columns next to the inputs), and one module per group
of checks: ``site_checks``, ``session_checks``, ``job_checks``, ``summary_checks``, ``copies``
(CSV and Parquet copies agree; source flows add up). Nothing here trusts the optimizer or imports it.
"""
