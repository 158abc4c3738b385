"""Locally generated SVG image tiles for products and categories.

The catalog ships without photos, so every tile is drawn on the fly: a
rounded square tinted by category, a badge with initials, and the label text.
Nothing is ever fetched from the internet.
"""

import hashlib
import re
import textwrap
from xml.sax.saxutils import escape

_SIZE = 400
_FONT = "system-ui, sans-serif"
_TEXT_COLOUR = "#1F2933"

# (background, badge, ink): a soft tint, a mid tone and a dark shade of one hue.
_PALETTE: tuple[tuple[str, str, str], ...] = (
    ("#FFF4E0", "#FFD9A0", "#8A4B00"),  # orange
    ("#E8F7EE", "#B9E6C9", "#1E6B3A"),  # green
    ("#E6F2FF", "#B8D8FA", "#1A4F8B"),  # blue
    ("#FDECEF", "#F8C2CD", "#9B2743"),  # pink
    ("#F1EBFF", "#D4C4FA", "#5B3A9E"),  # violet
    ("#FFF9DB", "#FCE98A", "#7A6200"),  # yellow
    ("#E3F8F7", "#AEE7E3", "#12665F"),  # teal
    ("#FBEDE4", "#F3C9AE", "#8C3D12"),  # terracotta
    ("#EEF1F5", "#CBD3DE", "#36465A"),  # slate
    ("#F3F9E3", "#D5EBA4", "#4D6B12"),  # lime
)

# Characters that XML 1.0 forbids outright; escape() does not remove them.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _palette(category: str) -> tuple[str, str, str]:
    # sha256 rather than hash(): str hashes are salted per process, and a
    # category must keep its colour across restarts and workers.
    digest = hashlib.sha256(category.encode("utf-8")).digest()
    return _PALETTE[int.from_bytes(digest[:8], "big") % len(_PALETTE)]


def _initials(text: str) -> str:
    """First letter or digit of up to two words; words like "&" are skipped."""
    firsts = (next((c for c in word if c.isalnum()), "") for word in text.split())
    return "".join(firsts).upper()[:2] or "?"


def _clean(text: str) -> str:
    """Drop XML-illegal characters and collapse whitespace."""
    return " ".join(_XML_ILLEGAL.sub("", text).split())


def _attr(text: str) -> str:
    """Escape text for use inside a double-quoted XML attribute."""
    return escape(text, {'"': "&quot;"})


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    """Wrap to at most max_lines lines, ending with an ellipsis if cut short."""
    lines = textwrap.wrap(text, width) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1].rstrip() + "…"
    return lines


def _text(x: int, y: int, size: int, weight: int, fill: str, content: str) -> str:
    return (
        f'<text x="{x}" y="{y}" font-family="{_FONT}" font-size="{size}" '
        f'font-weight="{weight}" fill="{fill}" text-anchor="middle">'
        f"{escape(content)}</text>"
    )


def _tile(title: str, subtitle: str | None, category: str) -> str:
    background, badge, ink = _palette(category)
    title = _clean(title)
    subtitle = _clean(subtitle) if subtitle else None
    label = f"{title}, {subtitle}" if subtitle else title

    centre, badge_y = _SIZE // 2, 150
    parts = [
        f'<rect x="8" y="8" width="384" height="384" rx="48" fill="{background}"/>',
        f'<circle cx="{centre}" cy="{badge_y}" r="96" fill="{badge}"/>',
        # Baseline nudged down ~0.35em to centre the initials; dominant-baseline
        # would be neater but some SVG renderers ignore it.
        _text(centre, badge_y + 25, 72, 700, ink, _initials(title)),
    ]
    y = 292
    for line in _wrap(title, width=18, max_lines=2):
        parts.append(_text(centre, y, 28, 600, _TEXT_COLOUR, line))
        y += 32
    if subtitle:
        unit = _wrap(subtitle, width=28, max_lines=1)[0]
        parts.append(_text(centre, y + 6, 22, 500, ink, unit))

    body = "".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SIZE}" height="{_SIZE}" '
        f'viewBox="0 0 {_SIZE} {_SIZE}" role="img" aria-label="{_attr(label)}">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )


def product_tile_svg(name: str, category: str, unit: str) -> str:
    """Return a complete standalone SVG document (string), 400x400 viewBox."""
    return _tile(title=name, subtitle=unit, category=category)


def category_tile_svg(category: str) -> str:
    """Return a standalone 400x400 SVG tile for a category, in its palette."""
    return _tile(title=category, subtitle=None, category=category)
