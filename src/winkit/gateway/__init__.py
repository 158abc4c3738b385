"""The API gateway: the one public entry in front of the four services (port 8000)."""
