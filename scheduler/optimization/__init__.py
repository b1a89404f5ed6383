"""Stage 2, optimization: one site's MIP and everything that touches Pyomo or HiGHS.

``preparation`` (per-site derived data), ``site_model`` (``build_model`` and the constraint
families, docs/formulation.md), ``highs_handoff`` (the model as HiGHS arrays), ``solving``
(a result object: status, objective, bound, gap, times), ``results`` (tidy DataFrames from a solved
model), ``heuristic`` (the fallback), ``persistent`` and ``combined`` (a warm site model; the
whole fleet in one model), ``fleet_placement`` (which site runs each movable job), and
``site_handle`` (:class:`SiteModel`: the named operations callers outside this stage use).
"""
