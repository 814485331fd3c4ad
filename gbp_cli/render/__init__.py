"""The render stage: maps as pictures (colour, gray, heatmap, overlay, panel) and encoded files."""

# How pictures are drawn, as a version every PNG's record holds: bump it whenever a change here
# (pictures.py, panel.py, encode.py) draws the same map and settings into other pixels, so that a
# rerun redoes the pictures an older gbp drew rather than keeping them. `.npy` maps don't hold it.
DRAWING = "1"
