"""Data files shipped with the product (see SOURCES.md)."""
