"""The one exception the data layer raises for bad data or data settings."""


class DataError(ValueError):
    """A dataset that cannot be used as configured; the message names the dataset, row, column and fix."""
