"""`--report`: the page of every input and its maps."""
