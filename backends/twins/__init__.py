"""Networks that exist in both frameworks as the same function, and their weights either way."""
