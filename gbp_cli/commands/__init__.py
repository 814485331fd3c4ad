"""One module per command; each validates its options, plans, and runs library stages."""
