"""The config half of every input kind: its compiled model, how its definition compiles, and what
rules and templates need to know of it. The registry (`registry.KINDS`) lists them; the runtime
half (parsing requests and lines into events) is in `bridge.inputs`, registered by the same name.

The package's __init__ imports nothing, so `bridge.config.model` can re-export the kinds' models
without importing the registry first.
"""
