"""The version, in a module of its own so that core modules can name it without importing the
public facade (``sarzoo/__init__.py``, which imports them lazily in turn)."""

__version__ = "0.1.0"
