"""User service (port 8001): one-time codes, registration, login, profiles, address books and token keys."""
