"""Exceptions and warnings that vadx raises on purpose."""


class NotFittedError(RuntimeError):
    """A detector was used before fit() (or load())."""


class ModelFileError(ValueError):
    """A model file is missing its vadx metadata, corrupted, or of an unknown detector."""


class PluginWarning(UserWarning):
    """A plugin failed to load or register and was skipped."""
