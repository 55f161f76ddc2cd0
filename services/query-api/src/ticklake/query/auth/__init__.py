"""Who may call the query API and what they may read: API keys, entitlements, rate limits."""
