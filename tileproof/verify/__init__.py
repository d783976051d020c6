"""tileproof layer (being built)."""
