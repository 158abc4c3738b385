def test_users_up(users, catalog):
    assert users.get("/health").json()["status"] == "ok"
    assert catalog.get("/health").json()["status"] == "ok"
