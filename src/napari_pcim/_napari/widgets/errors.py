"""How the widgets report a failed job: a user error is one notification; a bug asks for a report.

A user error (a bad file, model or option, a refusal, a non-finite result, a read-only
folder, a full disk, out of memory; sorted by :func:`napari_pcim.errors.user_message`,
the rule the CLI uses too) is shown as one napari error notification. Anything else is a bug in napari-pcim: the notification
says so and asks for a report, and the traceback goes to the log (napari's console and
the terminal), so it is never the only signal, nor lost.
"""

from __future__ import annotations

import logging

LOG = logging.getLogger("napari_pcim")


def report_failure(what: str, exc: BaseException) -> str:
    """Show ``exc`` as an error notification about ``what``; return the line shown."""
    from napari.utils.notifications import show_error

    from napari_pcim.errors import bug_report_line, user_message

    line = user_message(exc)
    if line is not None:
        msg = f"{what} failed: {line}"
    else:
        LOG.error("%s failed with a bug", what, exc_info=(type(exc), exc, exc.__traceback__))
        msg = f"{what} failed: {type(exc).__name__}: {exc}. {bug_report_line()} (traceback in the log)"
    show_error(msg)
    return msg
