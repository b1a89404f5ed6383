"""Stage 1, inputs: a scenario's settings and tables, validated into a frozen, typed :class:`Inputs`.

``settings`` (the pydantic configuration), ``tables`` (column specs and the converter every table
goes through), ``loading`` (a scenario directory or in-memory frames -> ``Inputs``; no solve),
``timegrid``, ``units`` (every conversion), ``errors`` (the one project error type), ``samples``
and ``caltech`` (the bundled data), ``plan_files`` (reading a written plan back as an input).
Nothing here imports Pyomo or HiGHS.
"""
