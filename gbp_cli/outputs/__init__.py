"""The write stage: where outputs go, what each records of its origin, and writing them safely."""
