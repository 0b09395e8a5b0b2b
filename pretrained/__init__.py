"""Models shipped with tuneforge: NAME.safetensors + NAME.json pairs (see README.md)."""
