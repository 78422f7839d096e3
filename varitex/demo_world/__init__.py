"""The embedded demo world: a synthetic face model in the BFM 2017 layout and a data set in the authors' layout.

    ensure_demo_world(root)    -> root, generated on first use (``varitex-make-demo`` on the command line)
    render_reposed(root, rows, theta)  -> its people re-rendered in requested poses (ground truth of known geometry)
"""
from varitex.demo_world.world import (default_demo_root, ensure_demo_world, generate_demo_world, render_reposed,
                                     world_parameters)

__all__ = ["default_demo_root", "ensure_demo_world", "generate_demo_world", "render_reposed", "world_parameters"]
