"""Rendering of synthetic demo scenes: the textured face over the exterior head, with Lambertian shading.

Both meshes are posed with the authors' ``apply_Rts`` about the *face's* centroid, so the head moves as
one rigid body, and rasterized with the project's renderer (``varitex.geometry``). The face always wins
where it covers a pixel, the inside of the mouth shows through the lip slit, the rest of the exterior
(hair, ears, neck, clothes) fills the remaining pixels it covers, and a gradient background the rest.
The UV map is the face mesh's alone, exactly what ``BFMUVFactory.getUV`` renders from the same
(R, t, s, sp, ep), as in the authors' preprocessed data.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import binary_fill_holes

from varitex.demo_world.appearance import MOUTH, exterior_appearance
from varitex.geometry import interpolate_uv, pose_vertices, rasterize
from varitex.geometry.mesh_attributes import face_normals, interpolate_vertex_attributes, vertex_normals

SPECULAR_STRENGTH = 0.06       # skin sheen of the face mesh
SPECULAR_EXPONENT = 24.0


@dataclass(frozen=True)
class Topology:
    """Mesh connectivity shared by a batch.

    faces (F, 3) long, verts_uvs (T, 2) float in [0, 1], faces_uvs (F, 3) long: the face model.
    exterior_faces (Fe, 3) long; exterior_parts (Fe,) numpy part ids; exterior_outward (Fe,) float
    tensor, +1/-1 for faces of closed parts wound outwards/inwards, 0 for open parts (never culled).
    """
    faces: torch.Tensor
    verts_uvs: torch.Tensor
    faces_uvs: torch.Tensor
    exterior_faces: torch.Tensor
    exterior_parts: np.ndarray
    exterior_outward: torch.Tensor


@dataclass(frozen=True)
class SceneBatch:
    """B scenes to render.

    face: (B, V, 3) face-model vertices (mm); exterior: (B, Ve, 3) exterior vertices in the same frame.
    R (B, 3, 3), t (B, 3), s (B, 1): the pose, as stored in the dataset.
    albedo: (B, 3, T, T) face albedo in UV space in [0, 1]; texture_labels: (B, 1, T, T) float label ids.
    identities: B synthetic_appearance.Identity (colours of the exterior).
    light_direction: (B, 3) unit vectors towards the light (camera frame); ambient: (B,) in [0, 1];
    light_color: (B, 3); background: (B, 2, 3) colours at the top and bottom of the image.
    """
    face: torch.Tensor
    exterior: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    s: torch.Tensor
    albedo: torch.Tensor
    texture_labels: torch.Tensor
    identities: Sequence
    light_direction: torch.Tensor
    ambient: torch.Tensor
    light_color: torch.Tensor
    background: torch.Tensor


class Rendered(NamedTuple):
    """uv: (B, S, S, 2) float32 in [-1, 1], background -1; labels: (B, S, S) uint8 CelebAMask-HQ ids;
    image: (B, S, S, 3) float32 in [0, 1], or None when not requested."""
    uv: torch.Tensor
    labels: torch.Tensor
    image: Optional[torch.Tensor]


def _shade(albedo, normals, positions, scenes, specular):
    """Lambertian shading (+ optional Blinn-Phong sheen) of (B, S, S, 3) albedo; two-sided normals."""
    view = F.normalize(-positions, dim=-1, eps=1e-12)
    normals = F.normalize(normals, dim=-1, eps=1e-12)
    normals = torch.where((normals * view).sum(-1, keepdim=True) < 0, -normals, normals)
    light = scenes.light_direction[:, None, None, :]
    diffuse = (normals * light).sum(-1, keepdim=True).clamp(min=0)
    ambient = scenes.ambient[:, None, None, None]
    color = albedo * (ambient + (1 - ambient) * diffuse) * scenes.light_color[:, None, None, :]
    if specular:
        half = F.normalize(light + view, dim=-1, eps=1e-12)
        color = color + SPECULAR_STRENGTH * (normals * half).sum(-1, keepdim=True).clamp(min=0) ** SPECULAR_EXPONENT
    return color


def _visible_exterior_faces(posed_exterior, topology):
    """Indices of exterior faces that face the camera in at least one scene (closed parts only culled)."""
    normals = face_normals(posed_exterior, topology.exterior_faces)
    centers = posed_exterior[:, topology.exterior_faces].mean(dim=2)
    facing = (topology.exterior_outward * (normals * -centers).sum(-1) > 0).any(dim=0)
    return torch.nonzero(facing | (topology.exterior_outward == 0)).squeeze(1)


def _exterior_layer(posed_exterior, topology, face_index, attributes, allowed, size):
    """Rasterize the exterior faces ``face_index``; returns (hit (B,S,S), attributes (B,S,S,C), parts (B,S,S))
    with hit limited to the ``allowed`` pixels."""
    faces = topology.exterior_faces[face_index]
    fragments = rasterize(posed_exterior, faces, size)
    hit = (fragments.pix_to_face >= 0) & allowed
    parts = torch.from_numpy(topology.exterior_parts)[face_index][fragments.pix_to_face.clamp(min=0)]
    return hit, interpolate_vertex_attributes(fragments, faces, attributes), parts


def render_scenes(scenes, topology, size, with_image=True):
    """Render uv maps, segmentation labels and (optionally) RGB images of a SceneBatch at S x S.

    Args:
        scenes: SceneBatch.
        topology: Topology.
        size: S.
        with_image: also shade the RGB image (the labels and uv are cheaper).

    Returns:
        Rendered(uv, labels, image).
    """
    posed_face = pose_vertices(scenes.face, scenes.R, scenes.t, scenes.s)
    centroid = scenes.face.mean(dim=1)
    # The exterior rotates about the face's centroid: s * ((v - c) @ R + c) + t with c of the face.
    posed_exterior = pose_vertices(scenes.exterior - centroid[:, None], scenes.R,
                                   scenes.t + scenes.s * centroid, scenes.s, correct_translation=False)
    face_fragments = rasterize(posed_face, topology.faces, size)
    uv = interpolate_uv(face_fragments, topology.verts_uvs, topology.faces_uvs)
    on_face = face_fragments.pix_to_face >= 0
    labels = F.grid_sample(scenes.texture_labels, uv, mode="nearest", align_corners=False)[:, 0]
    labels = torch.where(on_face, labels.round(), torch.zeros_like(labels)).to(torch.uint8)

    visible = _visible_exterior_faces(posed_exterior, topology)
    attributes = [scenes.exterior]
    if with_image:
        attributes += [vertex_normals(posed_exterior, topology.exterior_faces[visible]), posed_exterior]
    attributes = torch.cat(attributes, dim=-1)
    # The inside of the mouth is drawn only within the face's hole-filled silhouette, i.e. through the
    # lips: it lies deep behind them and would otherwise peek out under the chin in some poses.
    inside_face = torch.from_numpy(np.stack([binary_fill_holes(mask) for mask in on_face.numpy()]))
    is_mouth = torch.from_numpy(topology.exterior_parts == MOUTH)[visible]
    mouth = _exterior_layer(posed_exterior, topology, visible[is_mouth], attributes, inside_face & ~on_face, size)
    rest = _exterior_layer(posed_exterior, topology, visible[~is_mouth], attributes, ~on_face, size)
    on_exterior = mouth[0] | rest[0]
    exterior_attributes = torch.where(mouth[0][..., None], mouth[1], rest[1])
    parts = torch.where(mouth[0], mouth[2], rest[2])
    exterior_albedo = torch.zeros((*on_face.shape, 3))
    for b, identity in enumerate(scenes.identities):
        mask = on_exterior[b]
        albedo, part_labels = exterior_appearance(identity, parts[b][mask].numpy(),
                                                  exterior_attributes[b, ..., :3][mask].double().numpy())
        exterior_albedo[b][mask] = torch.from_numpy(albedo)
        labels[b][mask] = torch.from_numpy(part_labels)
    if not with_image:
        return Rendered(uv, labels, None)

    face_albedo = F.grid_sample(scenes.albedo, uv, mode="bilinear", padding_mode="border",
                                align_corners=False).permute(0, 2, 3, 1)
    face_attributes = interpolate_vertex_attributes(
        face_fragments, topology.faces, torch.cat([vertex_normals(posed_face, topology.faces), posed_face], -1))
    face_color = _shade(face_albedo, face_attributes[..., :3], face_attributes[..., 3:], scenes, specular=True)
    exterior_color = _shade(exterior_albedo, exterior_attributes[..., 3:6], exterior_attributes[..., 6:],
                            scenes, specular=False)
    rows = torch.linspace(0, 1, size)[None, :, None, None]
    background = scenes.background[:, None, None, 0] + rows * (scenes.background[:, None, None, 1]
                                                               - scenes.background[:, None, None, 0])
    image = torch.where(on_face[..., None], face_color,
                        torch.where(on_exterior[..., None], exterior_color, background.expand_as(face_color)))
    return Rendered(uv, labels, image.clamp(0, 1))
