"""``python -m winkit.app``: the app in a desktop window (or, with ``flet build``, on a phone).

The API address comes from ``WINKIT_APP_API_URL`` (default: the gateway on this machine).
"""

import os

import flet as ft

from winkit.app.main import api_client, build_main

if __name__ == "__main__":
    ft.run(build_main(api_client(os.environ.get("WINKIT_APP_API_URL", "http://127.0.0.1:8000/api"))))
