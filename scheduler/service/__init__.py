"""evdc serve: the online planner over HTTP (issue 20).

``tokens``: the API keys every call carries, each with a role and the party it speaks for; ``app``:
the ASGI application over the warm ``Planner``. The service is the outermost layer: it imports the
public API and nothing imports it.
"""
