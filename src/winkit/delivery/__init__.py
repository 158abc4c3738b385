"""Delivery & order status service (port 8004): the order's journey from PLACED to DELIVERED."""
