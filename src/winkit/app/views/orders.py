"""Order history and live tracking (status timeline and promised time, updated by push)."""

from __future__ import annotations

import asyncio

import flet as ft

from winkit.app.client import ApiError
from winkit.app.shell import Shell
from winkit.app.state import STEP_LABELS, Step, Tracking, clock, rupees
from winkit.app.widgets import BRAND, actions, empty_state, money_rows, muted, page_body, title

STATUS_COLOURS = {"DELIVERED": ft.Colors.GREEN_700, "CANCELLED": ft.Colors.RED_700}


def status_chip(status: str) -> ft.Control:
    colour = STATUS_COLOURS.get(status, ft.Colors.BLUE_700)
    return ft.Container(
        ft.Text(STEP_LABELS.get(status, status), size=12, color=ft.Colors.WHITE, weight=ft.FontWeight.BOLD),
        bgcolor=colour,
        padding=ft.Padding.symmetric(horizontal=8, vertical=3),
        border_radius=10,
    )


async def history(shell: Shell, _: dict[str, str]) -> ft.View:
    orders = await shell.api.orders()
    if not orders:
        content: ft.Control = empty_state(
            ft.Icons.RECEIPT_LONG_OUTLINED,
            "No orders yet.",
            ft.Button("Start shopping", on_click=lambda _: shell.go("/")),
        )
    else:
        content = ft.Column(
            [
                ft.Card(
                    ft.ListTile(
                        title=ft.Text(f"{len(o.items)} item{'s' if len(o.items) != 1 else ''} · {rupees(o.total)}"),
                        subtitle=muted(
                            f"{o.created_at.strftime('%d %b')} at {clock(o.created_at)} · #{o.order_id[-6:]}"
                        ),
                        trailing=status_chip(o.status),
                        on_click=lambda _, order_id=o.order_id: shell.go(f"/orders/{order_id}"),
                    )
                )
                for o in orders
            ]
        )
    return ft.View(
        controls=[shell.appbar("Your orders"), page_body(content, width=shell.page.width)], scroll=ft.ScrollMode.AUTO
    )


async def tracking(shell: Shell, params: dict[str, str]) -> ft.View:
    order_id = params["oid"]
    order = await shell.api.order(order_id)
    try:
        delivery = await shell.api.delivery(order_id)
    except ApiError as error:
        if error.status != 404:
            raise
        delivery = None  # the delivery record is opened moments after the order
    state = {"tracking": Tracking(order, delivery)}
    headline = ft.Text(size=22, weight=ft.FontWeight.BOLD)
    promise = ft.Text(size=15, color=BRAND, weight=ft.FontWeight.W_600)
    timeline = ft.Column(spacing=0)
    cancel_slot = ft.Container()

    def draw() -> None:
        current = state["tracking"]
        headline.value = current.headline
        headline.semantics_label = f"Order status: {current.headline}"
        promise.value = current.promise() or ""
        promise.visible = bool(promise.value)
        timeline.controls = [_step(step) for step in current.steps]
        cancel_slot.content = (
            actions(ft.OutlinedButton("Cancel order", icon=ft.Icons.CANCEL_OUTLINED, on_click=shell.on(cancel)))
            if current.can_cancel
            else None
        )

    async def cancel() -> None:
        await shell.api.cancel(order_id)
        shell.notify("Your order is cancelled. Nothing will be charged.")
        state["tracking"] = Tracking(await shell.api.order(order_id), await shell.api.delivery(order_id))
        draw()
        shell.page.update()

    async def follow() -> None:
        wait = 0.25
        while True:
            try:
                async for status in shell.api.follow(order_id):
                    state["tracking"] = Tracking(state["tracking"].order, status)
                    draw()
                    shell.page.update()
                return
            except ApiError as error:
                # A brand-new order's delivery record opens a moment after it is placed.
                if error.status != 404 or wait > 8:
                    raise
                await asyncio.sleep(wait)
                wait *= 2

    draw()
    if not state["tracking"].is_final:
        shell.live(follow)
    placed = "?placed=1" in shell.page.route
    items = ft.Column(
        [
            ft.Row(
                [ft.Text(f"{line.quantity} × {line.name}", expand=True), ft.Text(rupees(line.line_total))],
            )
            for line in order.items
        ]
    )
    address = order.address
    body = page_body(
        *([_placed_banner()] if placed else []),
        ft.Card(ft.Container(ft.Column([headline, promise, muted(f"Order #{order_id[-6:]}")], spacing=4), padding=16)),
        ft.Card(ft.Container(timeline, padding=16)),
        cancel_slot,
        ft.Card(
            ft.Container(
                ft.Column(
                    [
                        title("Items", 16),
                        items,
                        ft.Divider(),
                        money_rows(
                            [
                                ("Items", rupees(order.subtotal)),
                                ("Delivery", rupees(order.delivery_fee) if order.delivery_fee else "Free"),
                                ("Paid on delivery", rupees(order.total)),
                            ]
                        ),
                    ]
                ),
                padding=16,
            )
        ),
        *(
            [ft.Card(ft.Container(ft.Column([title("Delivering to", 16), ft.Text(address.one_line())]), padding=16))]
            if address
            else []
        ),
        width=shell.page.width,
    )
    return ft.View(controls=[shell.appbar("Track order", back="/orders"), body], scroll=ft.ScrollMode.AUTO)


def _placed_banner() -> ft.Control:
    return ft.Container(
        ft.Row(
            [
                ft.Icon(ft.Icons.CHECK_CIRCLE, color=ft.Colors.WHITE),
                ft.Text("Order placed! We're packing it now.", color=ft.Colors.WHITE, weight=ft.FontWeight.BOLD),
            ]
        ),
        bgcolor=BRAND,
        padding=14,
        border_radius=12,
    )


def _step(step: Step) -> ft.Control:
    colour = BRAND if step.done else ft.Colors.OUTLINE
    if step.current:
        icon = ft.Icons.RADIO_BUTTON_CHECKED
    else:
        icon = ft.Icons.CHECK_CIRCLE if step.done else ft.Icons.RADIO_BUTTON_UNCHECKED
    weight = ft.FontWeight.BOLD if step.current else ft.FontWeight.NORMAL
    return ft.Row(
        [
            ft.Icon(icon, color=colour),
            ft.Text(step.label, weight=weight, expand=True, semantics_label=step.spoken),
            muted(step.at or ""),
        ],
        height=36,
    )
