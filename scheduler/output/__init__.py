"""Stage 4, output: a plan written whole or not at all, and what other systems take from it.

``files`` (atomic files and directory swaps, output-directory safety), ``plan_dir`` (the plan
directory and its sinks), ``signing`` (manifest and signatures), ``sql`` (a database),
``report`` (the HTML page), ``ocpp``, ``redfish`` and ``openadr`` (device and grid exports, with
``device_common``).
"""
