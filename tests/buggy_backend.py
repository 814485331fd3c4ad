"""A stand-in backend whose second batch meets a bug (a KeyError), as gbp's own code might."""

from tests.raising_backend import failing_on_batch_2

load = failing_on_batch_2(lambda: KeyError("planner"))
