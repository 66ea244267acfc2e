"""The leaderboard: the standardised results table, aggregation, and (later) the static site."""
from leaderboard.table import aggregate, format_table

__all__ = ["aggregate", "format_table"]
