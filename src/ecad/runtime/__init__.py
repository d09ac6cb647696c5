"""The runtime: :func:`ecad.enable_cache` puts diffusers ``ModelHook``s on a transformer, its blocks and their
components, which recompute, replay or forecast each component's output as the schedule says, step by step."""
