"""The cart (steppers, bill, free-delivery hint) and checkout (address, place order)."""

from __future__ import annotations

import flet as ft

from winkit.app.client import ApiError, new_key
from winkit.app.models import Address
from winkit.app.shell import Shell
from winkit.app.state import ADDRESS_FIELDS, ADDRESS_LABELS, Checkout, address_form_errors, rupees
from winkit.app.widgets import BRAND, actions, empty_state, money_rows, muted, page_body, stepper, title


async def cart(shell: Shell, _: dict[str, str]) -> ft.View:
    shell.set_cart(await shell.api.cart())
    content = ft.Column(spacing=16)

    def draw() -> None:
        view = shell.cart
        assert view is not None
        if view.is_empty:
            content.controls = [
                empty_state(
                    ft.Icons.SHOPPING_CART_OUTLINED,
                    "Your cart is empty.",
                    ft.Button("Start shopping", on_click=lambda _: shell.go("/")),
                )
            ]
            return
        rows: list[ft.Control] = []
        for line_view in view.lines:
            line = line_view.line

            async def more(product_id: str = line.product_id) -> None:
                await shell.add_to_cart(product_id)
                redraw()

            async def less(product_id: str = line.product_id) -> None:
                await shell.take_from_cart(product_id)
                redraw()

            rows.append(
                ft.ListTile(
                    title=ft.Text(line.name, weight=ft.FontWeight.W_600),
                    subtitle=muted(f"{rupees(line.price)} each · {rupees(line.line_total)}"),
                    trailing=stepper(line.name, line.quantity, shell.on(less), shell.on(more), line_view.can_increase),
                )
            )
        hint = view.free_delivery_hint
        content.controls = [
            ft.Card(ft.Column(rows, spacing=0)),
            *([_hint(hint)] if hint else []),
            ft.Card(ft.Container(ft.Column([title("Bill", 16), money_rows(view.summary)]), padding=16)),
            actions(
                ft.FilledButton(
                    f"Checkout · {rupees(view.cart.total)}",
                    icon=ft.Icons.ARROW_FORWARD,
                    on_click=lambda _: shell.go("/checkout"),
                    style=ft.ButtonStyle(bgcolor=BRAND, padding=18),
                ),
                end=True,
            ),
        ]

    def redraw() -> None:
        draw()
        content.update()

    draw()
    return ft.View(
        controls=[shell.appbar("Your cart"), page_body(content, width=shell.page.width)], scroll=ft.ScrollMode.AUTO
    )


def _hint(text: str) -> ft.Control:
    return ft.Container(
        ft.Row(
            [
                ft.Icon(ft.Icons.LOCAL_SHIPPING_OUTLINED, color=BRAND),
                ft.Text(text, color=BRAND, weight=ft.FontWeight.W_600),
            ]
        ),
        padding=12,
        border_radius=12,
        border=ft.Border.all(1, BRAND),
    )


def address_form(values: dict[str, str] | None = None) -> tuple[ft.Column, dict[str, ft.TextField]]:
    """A new-address form and its fields, labelled for screen readers and tests."""
    fields = {
        name: ft.TextField(
            label=ADDRESS_LABELS[name],
            value=(values or {}).get(name, ""),
            keyboard_type=ft.KeyboardType.PHONE if name in ("phone", "pincode") else ft.KeyboardType.TEXT,
            dense=True,
        )
        for name in ADDRESS_FIELDS
    }
    layout = ft.ResponsiveRow(
        [
            ft.Container(fields["name"], col={"xs": 12, "sm": 6}),
            ft.Container(fields["phone"], col={"xs": 12, "sm": 6}),
            ft.Container(fields["line1"], col=12),
            ft.Container(fields["line2"], col={"xs": 12, "sm": 6}),
            ft.Container(fields["landmark"], col={"xs": 12, "sm": 6}),
            ft.Container(fields["city"], col={"xs": 12, "sm": 6}),
            ft.Container(fields["pincode"], col={"xs": 12, "sm": 6}),
        ],
        run_spacing=8,
    )
    return ft.Column([layout]), fields


def read_address(fields: dict[str, ft.TextField]) -> Address | None:
    """The address typed in, or None after marking every field that needs fixing."""
    values = {name: (field.value or "").strip() for name, field in fields.items()}
    errors = address_form_errors(values)
    for name, field in fields.items():
        field.error = errors.get(name)
    if errors:
        return None
    return Address.model_validate({k: v or None for k, v in values.items()})


async def checkout(shell: Shell, _: dict[str, str]) -> ft.View:
    shell.set_cart(await shell.api.cart())
    view = shell.cart
    assert view is not None
    if view.is_empty:
        shell.go("/cart")
        return ft.View(controls=[shell.appbar("Checkout", back="/cart")])
    attempt = Checkout(saved=await shell.api.addresses(), key=new_key())
    form, fields = address_form()
    note = ft.TextField(label="Note for the rider (optional)", max_length=500, dense=True)
    form.visible = attempt.chosen is None

    def choose(event: ft.Event[ft.RadioGroup]) -> None:
        attempt.chosen = event.control.value or None
        if attempt.chosen == "new":
            attempt.chosen = None
        form.visible = attempt.chosen is None
        shell.page.update()

    options: list[ft.Control] = [
        ft.Radio(value=a.id, label=f"{a.name or 'Saved address'} · {a.one_line()}") for a in attempt.saved
    ]
    options.append(ft.Radio(value="new", label="Deliver to a new address"))
    addresses = ft.RadioGroup(ft.Column(options), value=attempt.chosen or "new", on_change=choose)

    async def place() -> None:
        destination = attempt.destination if attempt.chosen else read_address(fields)
        if destination is None:
            form.update()
            return
        attempt.placing = True
        button.disabled = True
        button.update()
        try:
            order = await shell.api.place_order(destination, attempt.key, (note.value or "").strip() or None)
        except ApiError as error:
            if error.status == 409:
                # Nothing was placed: the next try is a new attempt with a new key.
                attempt.key = new_key()
            raise
        finally:
            attempt.placing = False
            button.disabled = False
            button.update()
        shell.set_cart(await shell.api.cart())
        shell.go(f"/orders/{order.order_id}?placed=1")

    button = ft.FilledButton(
        f"Place order · {rupees(view.cart.total)}",
        icon=ft.Icons.CHECK_CIRCLE_OUTLINE,
        on_click=shell.on(place),
        style=ft.ButtonStyle(bgcolor=BRAND, padding=18),
    )
    body = page_body(
        title("Deliver to", 18),
        ft.Card(ft.Container(ft.Column([addresses, form]), padding=16)),
        note,
        ft.Card(ft.Container(ft.Column([title("Bill", 16), money_rows(view.summary)]), padding=16)),
        muted("Pay on delivery: cash or UPI to the rider."),
        actions(button, end=True),
        width=shell.page.width,
    )
    return ft.View(controls=[shell.appbar("Checkout", back="/cart"), body], scroll=ft.ScrollMode.AUTO)
