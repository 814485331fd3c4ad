"""The render stage: maps as pictures (colour, gray, heatmap, overlay, panel) and encoded files."""
