"""Load, validate and compile the config file into a `Config` (see bridge.config.model)."""
