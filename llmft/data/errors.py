"""The one exception the data layer raises for bad data or data settings."""

from llmft.config.errors import ReportedError


class DataError(ReportedError, ValueError):
    """A dataset that cannot be used as configured; the message names the dataset, row, column and fix."""

    label = "data error"
    exit_code = 2
