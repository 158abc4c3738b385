"""Shopping: the catalog (categories, search, product grid) and one product."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import flet as ft

from winkit.app.models import Category, Product
from winkit.app.shell import Shell
from winkit.app.state import ProductCard, rupees
from winkit.app.widgets import ACCENT, BRAND, add_button, muted, page_body, product_image, product_tile, stepper, title


def _card(shell: Shell, product: Product) -> ProductCard:
    return ProductCard(product, shell.cart.quantity_of(product.id) if shell.cart else 0)


async def home(shell: Shell, _: dict[str, str]) -> ft.View:
    categories = await shell.api.categories()
    products = await shell.api.products()
    chosen: dict[str, str | None] = {"category": None, "q": None}
    grid = ft.ResponsiveRow(spacing=8, run_spacing=8)
    heading = title("All products", 18)

    def fill(items: list[Product]) -> None:
        tiles: list[ft.Control] = []
        for product in items:
            tiles.append(tile(product))
        grid.controls = tiles or [muted("Nothing matches. Try another word or category.", 15)]

    def tile(product: Product) -> ft.Control:
        async def add() -> None:
            await shell.add_to_cart(product.id)
            redraw()

        async def less() -> None:
            await shell.take_from_cart(product.id)
            redraw()

        def redraw() -> None:
            index = next((i for i, c in enumerate(grid.controls) if c.data == product.id), None)
            if index is not None:
                grid.controls[index] = tile(product)
                grid.update()

        card = product_tile(
            _card(shell, product),
            on_open=lambda _: shell.go(f"/product/{product.id}"),
            on_add=shell.on(add),
            on_less=shell.on(less),
            on_more=shell.on(add),
        )
        card.data = product.id
        return card

    async def reload() -> None:
        category, q = chosen["category"], chosen["q"]
        fill(await shell.api.products(category=category, q=q))
        heading.value = f'Results for "{q}"' if q else (category or "All products")
        chips.controls = _category_chips(categories, category, pick)
        shell.page.update()

    def pick(category: str | None) -> Callable[[Any], Awaitable[None]]:
        async def choose() -> None:
            chosen["category"] = None if chosen["category"] == category else category
            await reload()

        return shell.on(choose)

    async def search() -> None:
        chosen["q"] = (search_field.value or "").strip() or None
        await reload()

    search_field = ft.TextField(
        label="Search groceries",
        prefix_icon=ft.Icons.SEARCH,
        on_submit=shell.on(search),
        filled=True,
        expand=True,
    )
    chips = ft.Row(_category_chips(categories, None, pick), scroll=ft.ScrollMode.AUTO, spacing=8)
    fill(products)
    hero = ft.Container(
        ft.Row(
            [
                ft.Icon(ft.Icons.BOLT, color=ft.Colors.BLACK, size=36),
                ft.Column(
                    [
                        ft.Text("Groceries in 10 minutes", size=20, weight=ft.FontWeight.BOLD, color=ft.Colors.BLACK),
                        ft.Text("Fresh fruit, dairy, snacks and more, at your door.", color=ft.Colors.BLACK),
                    ],
                    spacing=2,
                    expand=True,
                ),
            ]
        ),
        bgcolor=ACCENT,
        border_radius=16,
        padding=16,
    )
    body = page_body(
        hero,
        ft.Row([search_field, ft.Button("Search", icon=ft.Icons.SEARCH, on_click=shell.on(search))]),
        title("Shop by category", 18),
        chips,
        heading,
        grid,
        width=shell.page.width,
    )
    return ft.View(
        controls=[shell.appbar("Winkit"), body], scroll=ft.ScrollMode.AUTO, padding=ft.Padding.only(bottom=24)
    )


Pick = Callable[[str | None], Callable[[Any], Awaitable[None]]]


def _category_chips(categories: list[Category], chosen: str | None, pick: Pick) -> list[ft.Control]:
    chips: list[ft.Control] = []
    for category in categories:
        selected = category.name == chosen
        tile = ft.Container(
            ft.Column(
                [
                    product_image(category.image_url, category.name, 64),
                    ft.Text(
                        category.name,
                        size=12,
                        text_align=ft.TextAlign.CENTER,
                        max_lines=2,
                        weight=ft.FontWeight.BOLD if selected else ft.FontWeight.NORMAL,
                    ),
                ],
                horizontal_alignment=ft.CrossAxisAlignment.CENTER,
                spacing=4,
            ),
            width=96,
            padding=8,
            border_radius=12,
            border=ft.Border.all(2, BRAND) if selected else None,
            on_click=pick(category.name),
            ink=True,
        )
        # One button, named for what it shows and whether it is the filter in use.
        label = f"{category.name}, {category.count} products"
        chips.append(ft.Semantics(content=tile, button=True, selected=selected, label=label, exclude_semantics=True))
    return chips


async def product(shell: Shell, params: dict[str, str]) -> ft.View:
    item = await shell.api.product(params["pid"])
    action_slot = ft.Container()

    def draw_action() -> None:
        card = _card(shell, item)
        if card.in_cart:
            action_slot.content = stepper(item.name, card.in_cart, shell.on(less), shell.on(add), card.can_add)
        else:
            action_slot.content = add_button(item.name, shell.on(add), card.can_add)

    async def add() -> None:
        await shell.add_to_cart(item.id)
        draw_action()
        action_slot.update()

    async def less() -> None:
        await shell.take_from_cart(item.id)
        draw_action()
        action_slot.update()

    draw_action()
    badge = ProductCard(item, 0).stock_badge
    details = ft.Column(
        [
            muted(item.category),
            title(item.name, 24),
            muted(item.unit, 15),
            ft.Text(rupees(item.price), size=22, weight=ft.FontWeight.BOLD),
            *([ft.Text(badge, color=ft.Colors.RED_700, weight=ft.FontWeight.BOLD)] if badge else []),
            action_slot,
            ft.Divider(),
            ft.Text(item.description or "No description yet."),
        ],
        spacing=8,
        col={"xs": 12, "md": 6},
    )
    image = ft.Container(
        product_image(item.image_url, item.name, 280), alignment=ft.Alignment.CENTER, col={"xs": 12, "md": 6}
    )
    body = page_body(ft.ResponsiveRow([image, details], spacing=24), width=shell.page.width)
    return ft.View(controls=[shell.appbar(item.name, back="/"), body], scroll=ft.ScrollMode.AUTO)
