"""From a backend's gradients to each method's map, and the model a run explains with."""
