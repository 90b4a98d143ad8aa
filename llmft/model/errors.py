"""The exception the model layer raises for a model, adapter or model setting that cannot work."""

from llmft.config.errors import ReportedError


class ModelError(ReportedError, ValueError):
    """A model mistake the user can fix (a missing directory, a module name the model lacks); the message
    names the key and the fix."""

    label = "model error"
    exit_code = 2
