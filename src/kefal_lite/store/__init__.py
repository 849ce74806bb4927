"""The only package with SQL. Entity modules hold plain functions over a connection."""
