"""Who may do what: API keys, JWT bearer tokens, roles and their permissions (spec §7)."""
