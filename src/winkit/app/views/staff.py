"""Store staff: the live operations board and stock editing with a low-stock list."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import flet as ft

from winkit.app.models import OpenDelivery, Product
from winkit.app.shell import Shell
from winkit.app.state import LOW_STOCK, Board, clock, low_stock, rupees
from winkit.app.views.orders import status_chip
from winkit.app.widgets import BRAND, empty_state, labelled, muted, page_body, title


def _delivery_card(shell: Shell, delivery: OpenDelivery) -> ft.Control:
    async def move(target: str) -> None:
        await shell.api.move(delivery.order_id, target)

    number = f"#{delivery.order_id[-6:]}"
    buttons: list[ft.Control] = []
    for label, target in Board.actions(delivery):
        # Read as "Confirm order #1a2b3c": the board holds many orders' buttons.
        text = labelled(label, f"{label} order {number}")
        handler = shell.on(partial(move, target))
        if target == "CANCELLED":
            buttons.append(ft.TextButton(content=text, on_click=handler, style=ft.ButtonStyle(color=ft.Colors.RED_700)))
        else:
            buttons.append(ft.FilledButton(content=text, on_click=handler, style=ft.ButtonStyle(bgcolor=BRAND)))
    address = delivery.address
    timing = []
    if delivery.placed_at:
        timing.append(f"placed {clock(delivery.placed_at)}")
    if delivery.promised_at:
        late = delivery.promised_at < datetime.now(UTC)
        timing.append(("LATE, was due " if late else "due ") + clock(delivery.promised_at))
    return ft.Card(
        ft.Container(
            ft.Column(
                [
                    ft.Row(
                        [title(number, 17), status_chip(delivery.status)],
                        alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
                    ),
                    muted(" · ".join(timing)),
                    ft.Column([ft.Text(f"{item.quantity} × {item.name}") for item in delivery.items], spacing=2),
                    muted(
                        f"{address.name} · {address.phone}\n{address.one_line()}" if address else "No address recorded"
                    ),
                    ft.Text(
                        f"Collect {rupees(delivery.total)}" if delivery.total is not None else "",
                        weight=ft.FontWeight.W_600,
                    ),
                    ft.Row(buttons, wrap=True),
                ],
                spacing=8,
            ),
            padding=16,
        ),
        col={"xs": 12, "md": 6, "lg": 4},
    )


async def board(shell: Shell, _: dict[str, str]) -> ft.View:
    state = Board()
    state.apply(await shell.api.open_deliveries())
    cards = ft.ResponsiveRow(spacing=12, run_spacing=12)
    count = muted("")

    def draw() -> None:
        queue = state.queue
        count.value = f"{len(queue)} open order{'s' if len(queue) != 1 else ''}, oldest first · updates live"
        cards.controls = [_delivery_card(shell, d) for d in queue] or [
            empty_state(ft.Icons.CHECK_CIRCLE_OUTLINE, "All caught up: no open orders.")
        ]

    async def follow() -> None:
        async for update in shell.api.board():
            state.apply(update)
            draw()
            shell.page.update()

    draw()
    shell.live(follow)
    body = page_body(ft.Row([title("Operations board", 22), count], wrap=True), cards, width=shell.page.width)
    return ft.View(controls=[shell.appbar("Winkit staff"), body], scroll=ft.ScrollMode.AUTO)


def _stock_row(shell: Shell, product: Product) -> ft.Control:
    field = ft.TextField(
        label=f"Stock of {product.name}",
        value=str(product.stock),
        width=140,
        dense=True,
        keyboard_type=ft.KeyboardType.NUMBER,
    )

    async def save() -> None:
        typed = (field.value or "").strip()
        if not typed.isdigit():
            field.error = "A whole number"
            field.update()
            return
        updated = await shell.api.set_stock(product.id, int(typed))
        field.error = None
        field.value = str(updated.stock)
        field.update()
        shell.notify(f"{updated.name}: stock is now {updated.stock}.")

    field.on_submit = shell.on(save)
    return ft.ListTile(
        title=ft.Text(product.name, weight=ft.FontWeight.W_600),
        subtitle=muted(f"{product.category} · {product.unit} · {rupees(product.price)}"),
        trailing=ft.Row([field, ft.TextButton("Save", on_click=shell.on(save))], tight=True),
    )


async def stock(shell: Shell, _: dict[str, str]) -> ft.View:
    products = await shell.api.products(limit=500)
    low = low_stock(products)
    listing = ft.Column([_stock_row(shell, p) for p in products], spacing=0)

    async def search(event: ft.Event[ft.TextField]) -> None:
        text = (event.control.value or "").strip().casefold()
        listing.controls = [_stock_row(shell, p) for p in products if text in p.name.casefold()]
        listing.update()

    body = page_body(
        title(f"Low stock ({len(low)} at {LOW_STOCK} or fewer)", 18),
        ft.Card(ft.Column([_stock_row(shell, p) for p in low] or [muted("Nothing is running low.")], spacing=0)),
        ft.Row([title("All products", 18)]),
        ft.TextField(label="Find a product", prefix_icon=ft.Icons.SEARCH, on_change=search, dense=True),
        ft.Card(listing),
        width=shell.page.width,
    )
    return ft.View(controls=[shell.appbar("Stock"), body], scroll=ft.ScrollMode.AUTO)
