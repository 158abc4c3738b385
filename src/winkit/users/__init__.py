"""User service (port 8001): one-time codes, registration, login, profiles and token keys."""
