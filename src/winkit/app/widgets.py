"""Small building blocks every view uses: the look of Winkit in one place.

Every control that acts has a name a screen reader (and a browser test) can find: buttons
say what they do, icon buttons carry a semantic label, text fields a label.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import flet as ft

from winkit.app.state import ProductCard

BRAND = "#0C8A42"  # Winkit green
ACCENT = "#F8CB46"  # the yellow of "10 minutes"
MAX_WIDTH = 1100

Handler = Callable[..., Awaitable[None] | None]


def themes() -> tuple[ft.Theme, ft.Theme]:
    """Light and dark, both from the brand colour."""
    return ft.Theme(color_scheme_seed=BRAND), ft.Theme(color_scheme_seed=BRAND)


def icon_button(
    icon: ft.IconData, label: str, on_click: Handler, color: ft.ColorValue | None = None, **kwargs: Any
) -> ft.IconButton:
    # The icon carries the label: an IconButton's tooltip alone leaves it unnamed.
    return ft.IconButton(
        icon=ft.Icon(icon, semantics_label=label, color=color), tooltip=label, on_click=on_click, **kwargs
    )


def page_body(*controls: ft.Control, width: float | None) -> ft.Control:
    """The view's content, centred and at most MAX_WIDTH wide, with side margins."""
    inner = min(width or MAX_WIDTH, MAX_WIDTH) - 32
    column = ft.Column(
        list(controls), width=max(inner, 280), spacing=16, horizontal_alignment=ft.CrossAxisAlignment.STRETCH
    )
    return ft.Row([column], alignment=ft.MainAxisAlignment.CENTER)


def actions(*buttons: ft.Control, end: bool = False) -> ft.Row:
    """Buttons at their natural width in a stretched column."""
    alignment = ft.MainAxisAlignment.END if end else ft.MainAxisAlignment.START
    return ft.Row(list(buttons), alignment=alignment, wrap=True)


def title(text: str, size: int = 20) -> ft.Text:
    return ft.Text(text, size=size, weight=ft.FontWeight.BOLD)


def muted(text: str, size: int = 13) -> ft.Text:
    return ft.Text(text, size=size, color=ft.Colors.ON_SURFACE_VARIANT)


def empty_state(icon: ft.IconData, text: str, action: ft.Control | None = None) -> ft.Control:
    parts: list[ft.Control] = [ft.Icon(icon, size=64, color=ft.Colors.OUTLINE), ft.Text(text, size=16)]
    if action is not None:
        parts.append(action)
    return ft.Container(
        ft.Column(parts, horizontal_alignment=ft.CrossAxisAlignment.CENTER, spacing=12),
        padding=40,
        alignment=ft.Alignment.CENTER,
    )


def product_image(url: str, name: str, size: float) -> ft.Control:
    return ft.Image(
        src=url,
        width=size,
        height=size,
        fit=ft.BoxFit.CONTAIN,
        semantics_label=name,
        error_content=ft.Icon(ft.Icons.SHOPPING_BASKET_OUTLINED, size=size / 2),
    )


def stepper(name: str, quantity: int, on_less: Handler, on_more: Handler, can_more: bool) -> ft.Control:
    """- 2 + in the brand colour; each button names the product it changes."""
    return ft.Container(
        ft.Row(
            [
                icon_button(ft.Icons.REMOVE, f"One less {name}", on_less, color=ft.Colors.WHITE),
                ft.Text(
                    str(quantity),
                    color=ft.Colors.WHITE,
                    weight=ft.FontWeight.BOLD,
                    semantics_label=f"{quantity} in cart",
                ),
                icon_button(
                    ft.Icons.ADD,
                    f"One more {name}",
                    on_more,
                    color=ft.Colors.WHITE,
                    disabled=not can_more,
                ),
            ],
            spacing=0,
            tight=True,
        ),
        bgcolor=BRAND,
        border_radius=8,
        height=40,
    )


def labelled(text: str, label: str) -> ft.Text:
    """Button text that reads ``label`` to screen readers (and tests): "ADD" says which product."""
    return ft.Text(text, semantics_label=label)


def add_button(name: str, on_add: Handler, enabled: bool) -> ft.Control:
    return ft.OutlinedButton(
        content=labelled("ADD", f"Add {name} to cart"),
        on_click=on_add,
        disabled=not enabled,
        style=ft.ButtonStyle(color=BRAND, side=ft.BorderSide(1, BRAND)),
    )


def product_tile(
    card: ProductCard, *, on_open: Handler, on_add: Handler, on_less: Handler, on_more: Handler
) -> ft.Control:
    product = card.product
    badge = card.stock_badge
    image = ft.Stack(
        [
            ft.Container(product_image(product.image_url, product.name, 110), alignment=ft.Alignment.CENTER),
            *(
                [
                    ft.Container(
                        ft.Text(badge, size=11, color=ft.Colors.WHITE, weight=ft.FontWeight.BOLD),
                        bgcolor=ft.Colors.RED_700 if product.stock == 0 else ft.Colors.ORANGE_800,
                        padding=ft.Padding.symmetric(horizontal=6, vertical=2),
                        border_radius=6,
                        left=0,
                        top=0,
                    )
                ]
                if badge
                else []
            ),
        ],
        height=118,
    )
    if card.in_cart:
        action = stepper(product.name, card.in_cart, on_less, on_more, card.can_add)
    else:
        action = add_button(product.name, on_add, card.can_add)
    body = ft.Column(
        [
            ft.Container(image, on_click=on_open, ink=True, border_radius=8),
            ft.Text(
                product.name, weight=ft.FontWeight.W_600, max_lines=2, overflow=ft.TextOverflow.ELLIPSIS, height=40
            ),
            muted(product.unit, 12),
            ft.Row(
                [ft.Text(card.price, weight=ft.FontWeight.BOLD, size=15), action],
                alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
            ),
        ],
        spacing=4,
        opacity=0.55 if product.stock == 0 else 1.0,
    )
    return ft.Card(ft.Container(body, padding=10), col={"xs": 6, "sm": 4, "md": 3, "lg": 2.4}, elevation=1)


def money_rows(rows: list[tuple[str, str]]) -> ft.Control:
    lines: list[ft.Control] = []
    for index, (label, value) in enumerate(rows):
        last = index == len(rows) - 1
        weight = ft.FontWeight.BOLD if last else ft.FontWeight.NORMAL
        lines.append(
            ft.Row(
                [ft.Text(label, weight=weight), ft.Text(value, weight=weight)],
                alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
            )
        )
    return ft.Column(lines, spacing=6)
