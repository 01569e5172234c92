"""Screenshot of the report's theorem-checks summary (docs/report_checks.png) in headless Chromium.

Usage: python docs/screenshot_report.py [docs/report.html] [docs/report_checks.png]
Needs Debian's `chromium`. The report is a single-page app, so a copy of it gets a small script
that opens Results > Theorem checks > summary > results/checks.html before the screenshot.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

OPEN_CHECKS = """<script>
function leaves(text) {
  return [...document.querySelectorAll('*')].filter(e => e.children.length === 0 && e.textContent.trim() === text);
}
function clickLast(text) { const found = leaves(text); if (found.length) found[found.length - 1].click(); }
setTimeout(() => clickLast('Theorem checks'), 800);
setTimeout(() => clickLast('summary'), 1600);
setTimeout(() => {
  let row = leaves('results/checks.html')[0];
  for (let i = 0; i < 4 && row; i++) {
    row = row.parentElement;
    const buttons = row.querySelectorAll('a,button,svg,[role=button]');
    if (buttons.length) { buttons[0].dispatchEvent(new MouseEvent('click', {bubbles: true})); break; }
  }
}, 2400);
</script>"""
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1100",
    "--virtual-time-budget=8000",
]


def main(report: str = "docs/report.html", out: str = "docs/report_checks.png") -> None:
    html = Path(report).read_text(encoding="utf-8")
    end = html.rfind("</body>")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html[:end] + OPEN_CHECKS + html[end:], encoding="utf-8")
        subprocess.run(
            [
                "chromium",
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp}/profile",
                f"--screenshot={Path(out).resolve()}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
