"""Thin Flet views: each builds one screen from state objects and the shell."""
