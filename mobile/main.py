"""The Winkit phone app: the web app's code, talking to Winkit's public API."""

import flet as ft

from winkit.app.main import api_client, build_main

# Where phones reach the API: the public address of the Ingress (docs/deployment.md).
API_URL = "https://winkit.example.com/api"

ft.run(build_main(api_client(API_URL)))
