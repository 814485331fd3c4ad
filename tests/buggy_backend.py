"""A stand-in backend that meets a bug (a KeyError) on a batch holding a white photo, as gbp's
own code might."""

from tests.raising_backend import failing_on_white

load = failing_on_white(lambda: KeyError("planner"))
