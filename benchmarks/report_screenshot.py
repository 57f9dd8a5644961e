"""Screenshot of a `prlkit report` page in headless Chromium, to look at the page without a desktop.

Usage: python benchmarks/report_screenshot.py REPORT.html [--out report.png] [--width 1200] [--height 2400]
Needs a `chromium` executable (Debian: `apt-get install chromium`); not used by the tests. Network,
sync and component updates are switched off, so a page that loads anything from outside shows it
as a broken image.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=Path("report.png"))
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=2400)
    parser.add_argument("--chromium",
                        default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([
            args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--screenshot={args.out.resolve()}",
            f"--window-size={args.width},{args.height}", args.report.resolve().as_uri(),
        ], check=True, timeout=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
