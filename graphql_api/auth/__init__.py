"""Who may do what: API keys (``keys``), roles and the mutation table (``roles``), and the
guard that enforces them on every root field (``guard``). See docs/security.md.
"""
