"""The frame of every HTML page evdc writes, and how to tell such a page from any other file.

``html_page`` wraps a report's body in one fixed head and style; ``is_report_page`` recognises that
head, so ``scheduler.output.files`` replaces a report evdc wrote and refuses any other file.
"""

from __future__ import annotations

import html

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; } th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .note { color: #666; font-size: 0.9em; }
"""

PAGE_HEAD = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>'
#: Bytes of a file read to tell whether it is a page evdc wrote (its head, title and style).
REPORT_HEAD_BYTES = 64 * 1024


def html_page(title: str, body: str) -> str:
    """A whole HTML page: the fixed head and style, ``title`` as its heading, then ``body`` (HTML)."""
    return (f"{PAGE_HEAD}{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def is_report_page(head: bytes) -> bool:
    """Whether ``head`` (a file's first REPORT_HEAD_BYTES) begins a page of :func:`html_page`: evdc's own report,
    which ``evdc report --out`` may replace (any other file there is refused)."""
    return head.startswith(PAGE_HEAD.encode()) and f"</title><style>{STYLE}</style>".encode() in head
