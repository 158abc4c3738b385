"""Signing in and up (with the emailed code), the profile, the address book, the theme."""

from __future__ import annotations

from typing import Any

import flet as ft

from winkit.app.shell import Shell
from winkit.app.views.cart import address_form, read_address
from winkit.app.widgets import BRAND, actions, muted, page_body, title


def _form_card(*controls: ft.Control) -> ft.Control:
    column = ft.Column(list(controls), spacing=14, horizontal_alignment=ft.CrossAxisAlignment.STRETCH)
    return ft.Card(ft.Container(column, padding=24), width=440)


def _centered(shell: Shell, heading: str, card: ft.Control, back: str | None = None) -> ft.View:
    body = ft.Row([card], alignment=ft.MainAxisAlignment.CENTER)
    return ft.View(
        controls=[shell.appbar(heading, back=back), ft.Container(body, padding=16)], scroll=ft.ScrollMode.AUTO
    )


async def login(shell: Shell, _: dict[str, str]) -> ft.View:
    email = ft.TextField(label="Email", keyboard_type=ft.KeyboardType.EMAIL, autofocus=True)
    password = ft.TextField(label="Password", password=True, can_reveal_password=True)

    async def sign_in() -> None:
        if not (email.value or "").strip() or not password.value:
            email.error = None if (email.value or "").strip() else "Enter your email."
            password.error = None if password.value else "Enter your password."
            shell.page.update()
            return
        await shell.signed_in(await shell.api.login(email.value.strip(), password.value))

    password.on_submit = shell.on(sign_in)
    card = _form_card(
        title("Sign in", 24),
        muted("Welcome back. Your cart is waiting."),
        email,
        password,
        ft.FilledButton("Sign in", on_click=shell.on(sign_in), style=ft.ButtonStyle(bgcolor=BRAND, padding=16)),
        ft.TextButton("New to Winkit? Create an account", on_click=lambda _: shell.go("/signup")),
    )
    return _centered(shell, "Sign in", card, back="/")


async def signup(shell: Shell, _: dict[str, str]) -> ft.View:
    name = ft.TextField(label="Your name", autofocus=True)
    email = ft.TextField(label="Email", keyboard_type=ft.KeyboardType.EMAIL)
    code = ft.TextField(label="6-digit code from your email", keyboard_type=ft.KeyboardType.NUMBER)
    password = ft.TextField(
        label="Choose a password", password=True, can_reveal_password=True, helper="At least 8 characters"
    )
    second_step = ft.Column([code, password], spacing=14, visible=False)
    status = muted("")

    async def send_code() -> None:
        if not (name.value or "").strip() or "@" not in (email.value or ""):
            name.error = None if (name.value or "").strip() else "Enter your name."
            email.error = None if "@" in (email.value or "") else "Enter your email address."
            shell.page.update()
            return
        name.error = email.error = None
        await shell.api.send_code(email.value.strip())
        status.value = f"We sent a code to {email.value.strip()}. It is valid for 5 minutes."
        second_step.visible = True
        send_button.content = "Send a new code"
        create_button.visible = True
        shell.page.update()

    async def create() -> None:
        typed = (code.value or "").strip()
        if len(typed) != 6 or not typed.isdigit() or len(password.value or "") < 8:
            code.error = None if len(typed) == 6 and typed.isdigit() else "Enter the 6 digits from the email."
            password.error = None if len(password.value or "") >= 8 else "At least 8 characters."
            shell.page.update()
            return
        address = (email.value or "").strip()
        await shell.api.register(
            name=(name.value or "").strip(), email=address, password=password.value or "", code=typed
        )
        await shell.signed_in(await shell.api.login(address, password.value or ""))

    send_button = ft.OutlinedButton("Email me a code", on_click=shell.on(send_code))
    create_button = ft.FilledButton(
        "Create account", on_click=shell.on(create), visible=False, style=ft.ButtonStyle(bgcolor=BRAND, padding=16)
    )
    card = _form_card(
        title("Create your account", 24),
        muted("Order in a minute, delivered in ten."),
        name,
        email,
        send_button,
        status,
        second_step,
        create_button,
        ft.TextButton("Already have an account? Sign in", on_click=lambda _: shell.go("/login")),
    )
    return _centered(shell, "Sign up", card, back="/login")


async def account(shell: Shell, _: dict[str, str]) -> ft.View:
    await shell.refresh_account()
    profile = shell.profile
    assert profile is not None
    saved = ft.Column(spacing=4)
    form, fields = address_form()
    adding = ft.Column([form], visible=False)

    async def reload() -> None:
        entries = await shell.api.addresses()
        saved.controls = [_address_tile(shell, a, reload) for a in entries] or [muted("No saved addresses yet.")]
        shell.page.update()

    async def save() -> None:
        address = read_address(fields)
        if address is None:
            shell.page.update()
            return
        await shell.api.add_address(address)
        for field in fields.values():
            field.value = ""
        adding.visible = False
        await reload()

    def toggle_form(_: Any) -> None:
        adding.visible = not adding.visible
        shell.page.update()

    adding.controls.append(
        ft.FilledButton("Save address", on_click=shell.on(save), style=ft.ButtonStyle(bgcolor=BRAND))
    )
    await reload()

    def theme(event: ft.Event[ft.SegmentedButton]) -> None:
        shell.page.run_task(shell.set_theme, ft.ThemeMode(event.control.selected[0]))

    mode = shell.page.theme_mode or ft.ThemeMode.SYSTEM
    body = page_body(
        ft.Card(
            ft.Container(
                ft.Column(
                    [
                        title(profile.name, 22),
                        muted(profile.email, 15),
                        *([muted(profile.phone, 15)] if profile.phone else []),
                        *([ft.Text(f"Signed in as {profile.role}", color=BRAND)] if profile.role != "customer" else []),
                    ],
                    spacing=4,
                ),
                padding=16,
            )
        ),
        ft.Row(
            [title("Saved addresses", 18), ft.TextButton("Add address", icon=ft.Icons.ADD, on_click=toggle_form)],
            alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
        ),
        ft.Card(ft.Container(ft.Column([adding, saved]), padding=16)),
        title("Appearance", 18),
        actions(
            ft.SegmentedButton(
                segments=[
                    ft.Segment(value="system", label="System"),
                    ft.Segment(value="light", label="Light"),
                    ft.Segment(value="dark", label="Dark"),
                ],
                selected=[mode.value],
                on_change=theme,
            )
        ),
        actions(ft.OutlinedButton("Sign out", icon=ft.Icons.LOGOUT, on_click=shell.on(shell.sign_out))),
        width=shell.page.width,
    )
    return ft.View(controls=[shell.appbar("Account"), body], scroll=ft.ScrollMode.AUTO)


def _address_tile(shell: Shell, address: Any, reload: Any) -> ft.Control:
    async def make_default() -> None:
        await shell.api.make_default(address.id)
        await reload()

    async def delete() -> None:
        await shell.api.delete_address(address.id)
        await reload()

    actions: list[ft.Control] = []
    if not address.is_default:
        actions.append(ft.TextButton("Make default", on_click=shell.on(make_default)))
    actions.append(
        ft.IconButton(
            icon=ft.Icon(ft.Icons.DELETE_OUTLINE, semantics_label=f"Delete address {address.line1}"),
            tooltip="Delete",
            on_click=shell.on(delete),
        )
    )
    heading = f"{address.name}" + (" · Default" if address.is_default else "")
    return ft.ListTile(
        leading=ft.Icon(ft.Icons.HOME_OUTLINED, color=BRAND if address.is_default else None),
        title=ft.Text(heading, weight=ft.FontWeight.W_600),
        subtitle=ft.Text(f"{address.one_line()} · {address.phone}"),
        trailing=ft.Row(actions, tight=True),
    )
