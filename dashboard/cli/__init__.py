"""The toska-kv commands that need no web app, one module per command group (common.py: what they share)."""
