"""Stage 3, planning: running a night and the day after it.

``engine`` (in-process or Dask workers), ``fleet`` (the fleet step: job placement across sites),
``night`` (every site solved, then combined into a :class:`Plan`; writing is the caller's sink),
``replan`` (events during the day), ``admission`` (a driver's booking request), ``committed``
(what a running plan has already promised).
"""
