"""The leaderboard: the standardised results table (:mod:`leaderboard.table`) and the static site
(:mod:`leaderboard.site`).  Reads only the results DataFrame of ``benchmark.results()``."""
from leaderboard.table import aggregate, export_table, format_table, method_label, standard_table

__all__ = ["aggregate", "build_site", "export_table", "format_table", "method_label", "serve", "standard_table"]


def build_site(*args, **kwargs):  # noqa: D103 - lazy: matplotlib is imported only when a site is built
    from leaderboard.site import build_site as _build

    return _build(*args, **kwargs)


build_site.__doc__ = "See :func:`leaderboard.site.build_site`."


def serve(*args, **kwargs):  # noqa: D103
    from leaderboard.site import serve as _serve

    return _serve(*args, **kwargs)


serve.__doc__ = "See :func:`leaderboard.site.serve`."
