"""The UI's content security policy allows no inline script or style: no template may carry either, or the
browser silently ignores it (a print stylesheet that never applies, a button that does nothing)."""

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "registry" / "ui" / "templates"
INLINE = re.compile(r"<style\b|<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|\sstyle\s*=", re.IGNORECASE)


def test_no_template_has_inline_script_style_or_event_handlers() -> None:
    found = [
        f"{path.relative_to(TEMPLATES)}:{number}: {match.group(0).strip()}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for match in INLINE.finditer(line)
    ]
    assert not found, found
