"""Real models by name: pipelines loaded from a folder, a hub id or a preset name, their MACs counted from their
configs, prompt sets, and the shipped ``tiny-shapes`` model."""
