"""The daily report as PDF: the same self-contained HTML, typeset by WeasyPrint.

The HTML page (:func:`truceline.report.daily.render_daily_html`) carries its own print CSS (A4,
running footer with page numbers, no table row split across pages) and its figures as embedded PNGs,
so the PDF needs nothing but the page itself: no network, no script, no base URL. WeasyPrint draws
text with Pango (Debian: ``libpango-1.0-0``, ``libpangoft2-1.0-0``, ``libharfbuzz-subset0``) and
uses the DejaVu fonts the CSS names first (``fonts-dejavu-core``). The PDF is tagged (PDF/UA-1).
"""

from __future__ import annotations

import datetime as dt
import logging

from truceline.errors import TrucelineError

__all__ = ["PdfUnavailableError", "html_to_pdf"]


class PdfUnavailableError(TrucelineError):
    """WeasyPrint or the Pango libraries it needs are not installed on this machine."""

    status_code = 503


def html_to_pdf(html: str, *, created: dt.datetime | None = None) -> bytes:
    """Typeset a self-contained HTML page as PDF bytes.

    Parameters
    ----------
    html
        The page; it must not refer to files or URLs (the daily report embeds everything).
    created
        The PDF's creation date (metadata); default now, UTC.

    Returns
    -------
    bytes
        A PDF document (``%PDF-...``).
    """
    try:
        # Imported here: loading Pango through cffi is slow, and only PDF output needs it.
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: the wheel is there but libpango is not
        raise PdfUnavailableError(
            f"PDF output needs WeasyPrint and Pango ({exc})",
            fix="install the system packages libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 "
            "fonts-dejavu-core (see .ci/run), or ask for --format html",
        ) from exc
    # WeasyPrint reports CSS it does not support through logging; the report's CSS is written for
    # both browsers and WeasyPrint, so those notes are noise at the default level.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    doc = HTML(string=html, base_url=None).render()
    stamp = (created or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    doc.metadata.created = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    doc.metadata.generator = "Truceline (WeasyPrint)"
    # Tagged PDF (PDF/UA-1): a structure tree, /MarkInfo /Marked true, the language from <html lang>,
    # the title shown in the window; screen readers read the tables and the images' alt text.
    pdf = doc.write_pdf(pdf_variant="pdf/ua-1")
    assert pdf is not None  # write_pdf() without a target returns the bytes
    return bytes(pdf)
