"""Geometry: Basel Face Model 2017, posing, the fixed camera and a pure-PyTorch UV rasterizer.

    BFM2017(path).generate_vertices(sp, ep)        -> (B, V, 3) face-model vertices
    pose_vertices(vertices, R, t, s)               -> (B, V, 3) posed, world space
    euler_to_rotation(theta), rotation_to_euler(R) -> (B, 3, 3) from (B, 3) degrees, and back
    render_uv(vertices, faces, verts_uvs, faces_uvs, S) -> (B, S, S, 2) UVs in [-1, 1], background -1
    BFMUVFactory(path_bfm, path_uv, S).getUV(R, t, s, sp, ep) -> all of the above in one call

The renderer reproduces the authors' PyTorch3D renders pixel for pixel; docs/conventions.md gives the
conventions (Euler angles, posing, camera, UV layout) and the tolerances of that comparison.
"""
from varitex.geometry.bfm import BFM2017, save_bfm2017
from varitex.geometry.camera import focal_length, pixel_centers, project_to_ndc
from varitex.geometry.posing import (DEFAULT_S, DEFAULT_T, euler_to_rotation, pose_vertices, rotation_angle_deg,
                                     rotation_to_euler)
from varitex.geometry.rasterizer import Fragments, rasterize
from varitex.geometry.uv_factory import BFMUVFactory
from varitex.geometry.uv_parameterization import load_uv_parameterization, save_uv_parameterization
from varitex.geometry.uv_render import interpolate_uv, render_uv

__all__ = [
    "BFM2017", "save_bfm2017", "focal_length", "pixel_centers", "project_to_ndc", "DEFAULT_S", "DEFAULT_T",
    "euler_to_rotation", "pose_vertices", "rotation_angle_deg", "rotation_to_euler", "Fragments", "rasterize",
    "BFMUVFactory",
    "load_uv_parameterization", "save_uv_parameterization", "interpolate_uv", "render_uv",
]
