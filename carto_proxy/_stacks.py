"""Where a lookup or connection came from: the calling stack, and the frame to show of it.

The frame shown is the innermost one in the application's own code (neither the standard
library, nor an installed package, nor carto_proxy): the line that made the request, or that
called the library which did. Code with no application frame (a library's own thread) shows
the innermost installed-package frame instead.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import traceback

__all__ = ["capture", "where"]

_LIMIT = 40  # innermost frames kept
_PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
_INSTALLED = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def capture() -> traceback.StackSummary:
    """The caller's stack, outermost frame first, without carto_proxy's frames on top.

    Source lines are not read now; a :class:`traceback.FrameSummary` reads its line when it
    is shown.
    """
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    summary = traceback.StackSummary.extract(
        traceback.walk_stack(frame), limit=_LIMIT, lookup_lines=False
    )
    summary.reverse()
    return summary


def where(summary: traceback.StackSummary) -> str:
    """``file:line`` of the frame of *summary* to show (see the module docstring)."""
    innermost_first = list(reversed(summary))
    for wanted in (_is_application, _is_installed):
        for frame in innermost_first:
            if wanted(frame.filename):
                return _place(frame)
    return _place(innermost_first[0]) if innermost_first else "an unknown place"


def _is_application(filename: str) -> bool:
    skipped = ("<frozen", _PACKAGE, *_standard_library())
    return not (filename.startswith(skipped) or _is_installed(filename))


def _is_installed(filename: str) -> bool:
    return any(marker in filename for marker in _INSTALLED)


@functools.cache
def _standard_library() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {paths[key] for key in ("stdlib", "platstdlib") if key in paths}
    return tuple(os.path.join(path, "") for path in found)


def _place(frame: traceback.FrameSummary) -> str:
    filename = frame.filename
    try:
        relative = os.path.relpath(filename)
    except (ValueError, OSError):  # another drive (Windows), or no working directory
        relative = filename
    if not relative.startswith(os.pardir):
        filename = relative
    return f"{filename}:{frame.lineno}"
