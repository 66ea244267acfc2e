"""The two Jinja2 environments of the pages sparsebench writes, over ``leaderboard/templates/``.

* :func:`html_env` — the leaderboard site (``*.html``): ``autoescape=True``, so every value is escaped
  in text and attributes; no template marks anything safe.
* :func:`markdown_env` — Markdown pages (reproductions, results tables: ``*.md``): no HTML escaping,
  the ``md`` filter escapes what breaks a table cell (``|`` and line breaks).

Both use ``StrictUndefined`` (a missing value is an error, never an empty string).
"""
from __future__ import annotations

import functools


def md_cell(text: object) -> str:
    """A Markdown table cell: ``|`` escaped, line breaks as spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


@functools.lru_cache(maxsize=None)
def _env(autoescape: bool):
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("leaderboard", "templates"), autoescape=autoescape,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=autoescape,
                              keep_trailing_newline=True)


def html_env():
    from leaderboard.site import FAMILY_LABELS, slugify

    env = _env(True)
    env.filters.setdefault("slugify", slugify)
    env.filters.setdefault("family_label", lambda fam: FAMILY_LABELS.get(fam, fam))
    return env


def markdown_env():
    env = _env(False)
    env.filters.setdefault("md", md_cell)
    return env
