"""The bottom layer: what every other layer needs (registry, strict model, naming, seeds, rejection)."""
