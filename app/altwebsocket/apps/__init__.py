"""The built-in apps: :mod:`.echo` and :mod:`.chat` (the papers' test servers)."""
