"""Cart & order service (port 8003): carts, checkout, order history and cancellation."""
