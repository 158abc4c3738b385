"""The `winkit` command: `winkit run` starts everything; `winkit users create` adds staff."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from winkit import __version__
from winkit.core.auth import Role
from winkit.core.database import connect, service_database
from winkit.core.errors import Problem
from winkit.core.settings import SERVICE_NAMES, Settings
from winkit.launcher import LaunchError, run_forever

app = typer.Typer(help="Winkit: quick-commerce grocery services.", no_args_is_help=True)
users_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
gateway_app = typer.Typer(help="The gateway (Envoy) configuration.", no_args_is_help=True)
app.add_typer(gateway_app, name="gateway")
console = Console()
errors = Console(stderr=True)


def _settings() -> Settings:
    """The settings from the environment, or one readable line per bad value and exit 2."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "WINKIT_" + "_".join(str(part) for part in error["loc"][:1]).upper()
            errors.print(f"winkit: {name}: {error['msg']}")
        raise typer.Exit(2) from None


def _print_ready(settings: Settings) -> None:
    from winkit.users.accounts import DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD

    table = Table(title=f"Winkit {__version__} is up ({settings.env})", show_header=True)
    table.add_column("part")
    table.add_column("address")
    gateway = f"http://{settings.host}:{settings.gateway_port}"
    table.add_row("Winkit app", f"http://localhost:{settings.app_port}  (shoppers and store staff)")
    table.add_row("API gateway", f"{gateway}  (docs: {gateway}/docs)")
    for name in SERVICE_NAMES:
        url = settings.service_url(name)
        table.add_row(f"{name} service", f"{url}  (docs: {url}/docs)")
    table.add_row("MongoDB", settings.mongodb_uri_for("users").split("?")[0])
    table.add_row("NATS", settings.effective_nats_url)
    console.print(table)
    if settings.env == "dev":
        console.print(f"Dev staff login: [bold]{DEV_STAFF_EMAIL}[/] / [bold]{DEV_STAFF_PASSWORD}[/]")
        console.print(f"One-time codes: {settings.users_url}/dev/outbox?to=EMAIL")
    console.print(f"Logs: {settings.data_dir / 'logs'}   Stop with Ctrl-C.")


@app.command()
def run() -> None:
    """Start the database, the event bus and every service; Ctrl-C stops them all."""
    settings = _settings()
    console.print(f"Starting Winkit ({settings.env}), data in {settings.data_dir.resolve()} ...")
    try:
        code = run_forever(settings, on_ready=lambda: _print_ready(settings))
    except LaunchError as exc:
        errors.print(f"winkit: {exc}")
        raise typer.Exit(1) from None
    console.print("Winkit stopped.")
    raise typer.Exit(code)


async def _create_user(settings: Settings, name: str, email: str, password: str, role: Role) -> str:
    from winkit.users.accounts import create_account
    from winkit.users.store import UsersStore

    client = connect(settings, "users")
    try:
        store = UsersStore(service_database(client, "users"))
        await store.ensure_indexes()
        user = await create_account(store, name=name, email=email, password=password, role=role)
        return str(user.id)
    finally:
        await client.close()


@users_app.command("create")
def create_user(
    email: Annotated[str, typer.Option(help="Login email")],
    name: Annotated[str, typer.Option(help="Display name")],
    role: Annotated[Role, typer.Option(help="staff, admin or customer")] = Role.STAFF,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Create an account directly in the user database (needs the database running)."""
    if len(password) < 8:
        errors.print("winkit: the password must have at least 8 characters")
        raise typer.Exit(2)
    try:
        user_id = asyncio.run(_create_user(_settings(), name, email, password, role))
    except Problem as exc:  # taken, or not an email address
        errors.print(f"winkit: {exc.detail}")
        raise typer.Exit(1) from None
    except Exception as exc:
        errors.print(f"winkit: could not create the account: {exc}")
        raise typer.Exit(1) from None
    console.print(f"Created {role.value} {email} with id {user_id}")


@gateway_app.command("envoy-config")
def envoy_config(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: standard output)")
    ] = None,
    validate: Annotated[bool, typer.Option(help="Check it with `envoy --mode validate` (needs Envoy here)")] = False,
) -> None:
    """Envoy's configuration for the current WINKIT_* settings, as JSON (what `winkit run`
    starts Envoy with; Compose and Kubernetes write it in an init container)."""
    from winkit.gateway import envoy

    text = json.dumps(envoy.config(_settings()), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text)
    if validate:
        try:
            envoy.validate(output)
        except (ValueError, FileNotFoundError) as exc:
            errors.print(f"winkit: {exc}")
            raise typer.Exit(1) from None
    console.print(f"Wrote {output}")
