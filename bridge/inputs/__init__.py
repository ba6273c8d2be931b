"""Inputs: what turns requests and log lines into events.

An input kind has two halves registered under its `type`: the config half in
bridge/config/inputs/ (its compiled model, compile step, secrets, template defaults; config imports
nothing of the runtime) and the runtime half here (`InputRuntime` in kind.py: the HTTP handler,
the `render` sample), listed in registry.py. http.py routes requests to the handlers; bearer.py is
the one bearer-token check; request.py is what a handler is given.
"""
