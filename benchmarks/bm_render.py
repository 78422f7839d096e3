"""Benchmark of the UV renderer on a mesh of the Basel Face Model's size (28,588 vertices, 56,572 faces).

The mesh is a bumpy latitude-longitude sphere of radius ~90 (millimetre-like, as the BFM), open at the
poles, with 94 full rings of 301 vertices and a partial ring of 294: exactly the BFM's vertex and face
counts. It is posed like a face (t = (0, -2, -57), s = 0.1, a few head rotations) and rendered at 256 x 256.

Prints one JSON line per (device, batch): {"device", "batch", "image_size", "ms_per_image" (wall-clock
median), "ms_per_image_min", "cpu_ms_per_image" (process CPU time, all threads), ...}.

    python benchmarks/bm_render.py            # CPU, and CUDA when available
    python benchmarks/bm_render.py --smoke    # one quick repetition per setting
    python benchmarks/bm_render.py --threads 1  # steadier when other jobs share the CPU
"""
import argparse
import json
import math
import time

import torch

from varitex.geometry import DEFAULT_S, DEFAULT_T, euler_to_rotation, pose_vertices, render_uv

N_VERTICES, N_FACES, COLUMNS = 28588, 56572, 301


def bfm_sized_mesh():
    """(V, 3) vertices, (F, 3) faces and (V, 2) UVs of the benchmark mesh (V = 28,588, F = 56,572)."""
    index = torch.arange(N_VERTICES)
    ring, column = index // COLUMNS, index % COLUMNS
    n_rings = int(ring.max()) + 1
    latitude = (ring.double() / (n_rings - 1) - 0.5) * math.radians(170.0)
    longitude = column.double() / COLUMNS * 2 * math.pi
    radius = 90.0 + 6.0 * torch.sin(5 * latitude) * torch.cos(7 * longitude)
    vertices = torch.stack([radius * torch.cos(latitude) * torch.sin(longitude), radius * torch.sin(latitude),
                            radius * torch.cos(latitude) * torch.cos(longitude)], dim=1).float()
    # Quads between ring r and r+1 (wrapping in longitude); the last, partial ring has no wrap.
    r, c = torch.meshgrid(torch.arange(n_rings - 1), torch.arange(COLUMNS), indexing="ij")
    a = (r * COLUMNS + c).reshape(-1)
    b = (r * COLUMNS + (c + 1) % COLUMNS).reshape(-1)
    keep = (a + COLUMNS < N_VERTICES) & (b + COLUMNS < N_VERTICES) & ((c < COLUMNS - 1).reshape(-1)
                                                                     | (r < n_rings - 2).reshape(-1))
    a, b = a[keep], b[keep]
    faces = torch.cat([torch.stack([a, b, a + COLUMNS], 1), torch.stack([b, b + COLUMNS, a + COLUMNS], 1)])
    uvs = torch.stack([column.float() / COLUMNS, ring.float() / (n_rings - 1)], dim=1)
    assert faces.shape == (N_FACES, 3) and int(faces.max()) < N_VERTICES, faces.shape
    return vertices, faces, uvs


def posed_batch(vertices, batch, device):
    """(batch, V, 3) copies of the mesh in face-like poses with the default framing."""
    angles = torch.tensor([[0.0, 0.0, 0.0], [0.0, -35.0, 0.0], [-15.0, -20.0, 0.0], [30.0, 45.0, 0.0],
                           [0.0, 0.0, 20.0], [45.0, -45.0, 10.0], [10.0, 25.0, -5.0], [-20.0, 10.0, 5.0]])
    rotations = euler_to_rotation(angles[torch.arange(batch) % len(angles)])
    t = torch.tensor(DEFAULT_T).expand(batch, 3)
    s = torch.full((batch, 1), DEFAULT_S)
    return pose_vertices(vertices.expand(batch, -1, -1), rotations, t, s).to(device)


def time_render(posed, faces, uvs, image_size, repeats, perspective_correct):
    """Seconds per render_uv call over ``repeats`` runs after a warm-up run: wall-clock median and minimum,
    and the median process CPU time (all threads; robust when other jobs share the machine), plus the
    fraction of foreground pixels."""
    def run():
        uv = render_uv(posed, faces, uvs, faces, image_size, perspective_correct=perspective_correct)
        if posed.is_cuda:
            torch.cuda.synchronize()
        return uv

    uv = run()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    median = sorted(wall)[len(wall) // 2]
    return median, min(wall), sorted(cpu)[len(cpu) // 2], float((uv[..., 0] > -1).float().mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="one repetition per setting")
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--perspective_correct", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's default, one per core)")
    parser.add_argument("--devices", nargs="+", default=None, choices=["cpu", "cuda"],
                        help="devices to time (default: the CPU, and CUDA when available)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    vertices, faces, uvs = bfm_sized_mesh()
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for batch in args.batches:
            posed = posed_batch(vertices, batch, device)
            repeats = 1 if args.smoke else (20 if device == "cuda" else 7)
            median, best, cpu, coverage = time_render(posed, faces.to(device), uvs.to(device), args.image_size, repeats,
                                            args.perspective_correct)
            print(json.dumps({
                "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                "threads": torch.get_num_threads(), "batch": batch, "image_size": args.image_size,
                "n_vertices": N_VERTICES, "n_faces": N_FACES, "perspective_correct": args.perspective_correct,
                "ms_per_image": round(1000 * median / batch, 3), "ms_per_image_min": round(1000 * best / batch, 3),
                "cpu_ms_per_image": round(1000 * cpu / batch, 3),
                "repeats": repeats, "coverage": round(coverage, 4)}), flush=True)


if __name__ == "__main__":
    main()
