"""Degradations: ops (one file each), presets, and the perturb stage that chains them."""
