"""Catalog service (port 8002): products, categories, images and stock."""
