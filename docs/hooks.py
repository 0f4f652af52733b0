"""MkDocs hook: make table cells read the same on the site as on GitHub.

GitHub needs a pipe inside a code span of a table cell written `\\|` (or it splits the cell) and shows
it as `|`; Python-Markdown keeps the backslash. This puts the bare pipe back in inline code.
"""

from __future__ import annotations

import re

INLINE_CODE = re.compile(r"<code>([^<]*)</code>")


def on_page_content(html: str, **kwargs) -> str:
    return INLINE_CODE.sub(lambda match: "<code>" + match.group(1).replace("\\|", "|") + "</code>", html)
