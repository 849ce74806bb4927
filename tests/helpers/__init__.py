"""Helpers shared by several test modules, one module per area, so that no test module
imports another (fixtures shared the same way are imported into conftest.py)."""
