"""Local development tooling: Azurite launcher, local event source, demo. Never deployed (see .funcignore)."""
