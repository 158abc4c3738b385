"""One person's app session: who is signed in, their cart, which view shows, what runs live.

Views build controls; the shell routes between them, keeps the session (remembered in the
browser's storage), turns every failure into a notice (``state.describe``), and owns the
one live task (a tracking or board stream) of the view on screen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import flet as ft
import structlog

from winkit.app.client import ApiError, WinkitApi
from winkit.app.models import Cart, Profile, SignedIn
from winkit.app.state import CartView, Notice, NoticeKind, describe
from winkit.app.widgets import BRAND, themes

log = structlog.get_logger("winkit.app")

SESSION_KEY = "winkit.session"
THEME_KEY = "winkit.theme"

Action = Callable[[], Awaitable[None]]
ViewBuilder = Callable[["Shell", dict[str, str]], Awaitable[ft.View]]


@dataclass(frozen=True)
class Route:
    template: str
    build: ViewBuilder
    signed_in: bool = False
    staff: bool = False


@dataclass(frozen=True)
class Tab:
    label: str
    route: str
    icon: ft.IconData
    selected_icon: ft.IconData
    # The pages under this tab, besides its own (path prefixes).
    also: tuple[str, ...] = ()

    def covers(self, path: str) -> int:
        """How specifically this tab covers ``path`` (0: not at all)."""
        prefixes = (self.route, *self.also)
        return max((len(p) for p in prefixes if path == p or path.startswith(p.rstrip("/") + "/")), default=0)


SHOPPER_TABS = (
    Tab("Shop", "/", ft.Icons.STOREFRONT_OUTLINED, ft.Icons.STOREFRONT, also=("/product",)),
    Tab("Cart", "/cart", ft.Icons.SHOPPING_CART_OUTLINED, ft.Icons.SHOPPING_CART, also=("/checkout",)),
    Tab("Orders", "/orders", ft.Icons.RECEIPT_LONG_OUTLINED, ft.Icons.RECEIPT_LONG),
    Tab("Account", "/account", ft.Icons.PERSON_OUTLINE, ft.Icons.PERSON, also=("/login", "/signup")),
)
STAFF_TABS = (
    Tab("Board", "/staff", ft.Icons.DASHBOARD_OUTLINED, ft.Icons.DASHBOARD),
    Tab("Stock", "/staff/stock", ft.Icons.INVENTORY_2_OUTLINED, ft.Icons.INVENTORY_2),
    Tab("Account", "/account", ft.Icons.PERSON_OUTLINE, ft.Icons.PERSON),
)


def _width_class(width: float | None) -> int:
    """0 phone, 1 tablet, 2 desktop."""
    return 0 if (width or 0) < 600 else 1 if (width or 0) < 1000 else 2


def _tab_icon(icon: ft.IconData, count: int) -> ft.Icon:
    """A tab's icon, with a count badge (items in the cart) when there is one."""
    return ft.Icon(icon, badge=ft.Badge(label=str(count)) if count else None)


class Shell:
    def __init__(self, page: ft.Page, api: WinkitApi, routes: list[Route]) -> None:
        self.page = page
        self.api = api
        self.routes = routes
        self.user: SignedIn | None = None
        self.profile: Profile | None = None
        self.cart: CartView | None = None
        # Where to go (and what to add) once someone signs in.
        self.next_route = "/"
        self.pending_add: str | None = None
        self._live: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._prefs = ft.SharedPreferences()
        self._banner: ft.Banner | None = None
        self._width_class = 0
        self._nav: ft.NavigationBar | None = None

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        page = self.page
        page.title = "Winkit: groceries in 10 minutes"
        page.theme, page.dark_theme = themes()
        saved_theme = await self._prefs.get(THEME_KEY)
        page.theme_mode = ft.ThemeMode(saved_theme) if saved_theme in ("light", "dark") else ft.ThemeMode.SYSTEM
        page.on_route_change = self._on_route_change
        page.on_resize = self._on_resize
        page.on_disconnect = self._on_disconnect
        page.on_close = self._on_disconnect
        await self._restore_session()
        await self.show(page.route)

    async def _on_route_change(self, event: ft.RouteChangeEvent) -> None:
        await self.show(event.route)

    async def _on_resize(self, event: ft.PageResizeEvent) -> None:
        # Views are laid out for the width they were built at: rebuild when it changes class.
        if _width_class(event.width) != self._width_class:
            await self.show(self.page.route)

    async def _on_disconnect(self, _: Any = None) -> None:
        self.stop_live()

    async def _restore_session(self) -> None:
        raw = await self._prefs.get(SESSION_KEY)
        if not isinstance(raw, str):
            return
        try:
            self.user = SignedIn.model_validate_json(raw)
        except ValueError:
            await self._prefs.remove(SESSION_KEY)
            return
        self.api.token = self.user.access_token
        try:
            await self.refresh_account()
        except ApiError as error:
            if error.status == 401:
                await self.sign_out(Notice(NoticeKind.SIGNED_OUT, describe(error).text), go=False)
        except Exception:
            self.notify(Notice(NoticeKind.OFFLINE, describe(ConnectionError()).text))

    # --- routing ----------------------------------------------------------------------

    def go(self, route: str) -> None:
        self.page.navigate(route)

    async def show(self, location: str) -> None:
        """Build and show the view for ``location`` (a route, maybe with a query string)."""
        self.stop_live()
        path = location.split("?", 1)[0] or "/"
        template = ft.TemplateRoute(path)
        route = next((r for r in self.routes if template.match(r.template)), None)
        if route is None:
            route, params = self.routes[0], {}
        else:
            params = {k: v for k, v in vars(template).items() if k != "route"}
        if route.signed_in and self.user is None:
            self.next_route = location
            self.go("/login")
            return
        if route.staff and not (self.user and self.user.is_staff):
            self.go("/")
            return
        try:
            view = await route.build(self, params)
        except Exception as error:
            self.notify(error)
            view = self._failed_view(location)
        view.route = location
        view.navigation_bar = self._navigation(path)
        self._width_class = _width_class(self.page.width)
        self.page.views.clear()
        self.page.views.append(view)
        self.page.update()

    def _failed_view(self, location: str) -> ft.View:
        retry = ft.Button("Try again", icon=ft.Icons.REFRESH, on_click=self.on(lambda: self.show(location)))
        body = ft.Column(
            [ft.Icon(ft.Icons.CLOUD_OFF, size=64), ft.Text("This page could not be loaded."), retry],
            horizontal_alignment=ft.CrossAxisAlignment.CENTER,
        )
        return ft.View(controls=[self.appbar("Winkit"), ft.Container(body, padding=40, alignment=ft.Alignment.CENTER)])

    def _navigation(self, path: str) -> ft.NavigationBar:
        tabs = STAFF_TABS if self.user and self.user.is_staff else SHOPPER_TABS
        selected = max(range(len(tabs)), key=lambda i: tabs[i].covers(path))
        count = self.cart.cart.count if self.cart else 0

        async def change(event: ft.Event[ft.NavigationBar]) -> None:
            self.go(tabs[int(event.control.selected_index)].route)

        self._nav = ft.NavigationBar(
            destinations=[
                ft.NavigationBarDestination(
                    icon=_tab_icon(tab.icon, count if tab.route == "/cart" else 0),
                    selected_icon=_tab_icon(tab.selected_icon, count if tab.route == "/cart" else 0),
                    label=tab.label,
                )
                for tab in tabs
            ],
            selected_index=selected,
            on_change=change,
        )
        return self._nav

    def appbar(self, heading: str, *, back: str | None = None, actions: list[ft.Control] | None = None) -> ft.AppBar:
        leading = None
        if back is not None:
            leading = ft.IconButton(
                icon=ft.Icon(ft.Icons.ARROW_BACK, semantics_label="Back"),
                tooltip="Back",
                on_click=lambda _: self.go(back),
            )
        return ft.AppBar(
            leading=leading,
            automatically_imply_leading=False,
            title=ft.Row(
                [ft.Icon(ft.Icons.BOLT, color=BRAND), ft.Text(heading, weight=ft.FontWeight.BOLD)], tight=True
            ),
            actions=actions or [],
        )

    # --- live updates -----------------------------------------------------------------

    def live(self, loop: Action) -> None:
        """Run the view's live loop (a stream) until the view changes or the tab closes."""
        self.stop_live()
        self._live = asyncio.create_task(self._run_live(loop))

    async def _run_live(self, loop: Action) -> None:
        delay = 1.0
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                notice = describe(error)
                if notice.kind != NoticeKind.OFFLINE:
                    self.notify(notice)
                    return
                log.info("live_updates_reconnecting", error=type(error).__name__, delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def stop_live(self) -> None:
        if self._live is not None:
            self._live.cancel()
            self._live = None

    # --- notices ----------------------------------------------------------------------

    def on(self, action: Action) -> Callable[[Any], Awaitable[None]]:
        """An event handler running ``action``; whatever it raises becomes a notice."""

        async def handle(_: Any = None) -> None:
            try:
                await action()
            except Exception as error:
                self.notify(error)

        return handle

    def notify(self, problem: Exception | Notice | str) -> None:
        notice = problem if isinstance(problem, Notice) else None
        if isinstance(problem, str):
            notice = Notice(NoticeKind.INFO, problem)
        elif isinstance(problem, Exception):
            if not isinstance(problem, ApiError):
                # The kind only: an error's text may hold what the person typed.
                log.warning("app_action_failed", error=type(problem).__name__)
            notice = describe(problem)
        assert notice is not None
        if notice.kind == NoticeKind.OFFLINE:
            self._show_banner(notice.text)
        elif notice.kind == NoticeKind.SIGNED_OUT:
            # The loop keeps only a weak reference to a task: hold it until it is done.
            task = asyncio.create_task(self.sign_out(notice))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif notice.kind == NoticeKind.OUT_OF_STOCK:
            self._snack(notice.text, "Fix my cart", self.on(lambda: self.fix_cart(notice.available)))
        else:
            self._snack(notice.text)

    def _snack(self, text: str, action: str | None = None, on_action: Any = None) -> None:
        self.page.show_dialog(
            ft.SnackBar(
                ft.Text(text),
                action=action,
                on_action=on_action,
                duration=ft.Duration(seconds=8 if action else 5),
                show_close_icon=True,
            )
        )

    def _show_banner(self, text: str) -> None:
        if self._banner is not None:
            return

        async def retry(_: Any) -> None:
            self._close_banner()
            await self.show(self.page.route)

        def dismiss(_: Any) -> None:
            self._close_banner()

        self._banner = ft.Banner(
            content=ft.Text(text),
            leading=ft.Icon(ft.Icons.WIFI_OFF, color=ft.Colors.AMBER),
            actions=[ft.TextButton("Retry", on_click=retry), ft.TextButton("Dismiss", on_click=dismiss)],
        )
        self.page.show_dialog(self._banner)

    def _close_banner(self) -> None:
        if self._banner is not None:
            with contextlib.suppress(Exception):
                self.page.pop_dialog()
            self._banner = None

    # --- session ----------------------------------------------------------------------

    async def signed_in(self, session: SignedIn) -> None:
        self.user = session
        self.api.token = session.access_token
        await self._prefs.set(SESSION_KEY, session.model_dump_json())
        await self.refresh_account()
        if self.pending_add:
            product_id, self.pending_add = self.pending_add, None
            await self.add_to_cart(product_id)
        target = self.next_route if self.next_route not in ("/login", "/signup") else "/"
        self.next_route = "/"
        self.go("/staff" if session.is_staff and target == "/" else target)

    async def refresh_account(self) -> None:
        self.profile = await self.api.profile()
        self.cart = CartView(await self.api.cart()) if not self.user or not self.user.is_staff else None

    async def sign_out(self, notice: Notice | None = None, *, go: bool = True) -> None:
        """Forget the session here (the cart stays on the server for next time)."""
        if notice is not None and self.user is not None:
            self.next_route = self.page.route if self.page.route not in ("/login", "/signup") else "/"
        self.user, self.profile, self.cart = None, None, None
        self.api.token = None
        await self._prefs.remove(SESSION_KEY)
        if notice is not None:
            self._snack(notice.text)
        if go:
            self.go("/login" if notice else "/")

    async def set_theme(self, mode: ft.ThemeMode) -> None:
        self.page.theme_mode = mode
        await self._prefs.set(THEME_KEY, mode.value)
        self.page.update()

    # --- cart -------------------------------------------------------------------------

    def set_cart(self, cart: Cart) -> None:
        self.cart = CartView(cart)
        if self._nav is not None:
            index = next(i for i, tab in enumerate(SHOPPER_TABS) if tab.route == "/cart")
            destination = self._nav.destinations[index]
            destination.icon = _tab_icon(SHOPPER_TABS[index].icon, cart.count)
            destination.selected_icon = _tab_icon(SHOPPER_TABS[index].selected_icon, cart.count)
            self._nav.update()

    async def add_to_cart(self, product_id: str, quantity: int = 1) -> None:
        if self.user is None:
            self.pending_add, self.next_route = product_id, self.page.route
            self._snack("Sign in to start your cart.")
            self.go("/login")
            return
        self.set_cart(await self.api.add_to_cart(product_id, quantity))

    async def take_from_cart(self, product_id: str, quantity: int | None = 1) -> None:
        self.set_cart(await self.api.remove_from_cart(product_id, quantity))

    async def fix_cart(self, available: dict[str, int]) -> None:
        """Bring each short line down to what is in stock (off the cart when none is)."""
        if self.cart is None:
            return
        for product_id, excess in self.cart.fixes(available):
            await self.take_from_cart(product_id, excess)
        self._snack("Your cart now matches what is in stock.")
        if self.page.route == "/cart":
            await self.show("/cart")
        else:
            self.go("/cart")
