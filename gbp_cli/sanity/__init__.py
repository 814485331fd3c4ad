"""`gbp sanity`: cascading randomization, the class check, and how alike two maps are."""
