"""The digital phantom: brain anatomy, veins, lesions with rims and confounders, as
tissue labels and a susceptibility map (ppm) on a 1 mm grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import fft, ndimage
from scipy.spatial.transform import Rotation

from prlkit.synth.lesions import LesionSpec

# Tissue codes of the label map.
BACKGROUND, CSF, GM, WM, VENTRICLE, CAUDATE, PUTAMEN, PALLIDUM, THALAMUS = range(9)
# Literature-like susceptibilities (ppm, relative to CSF): WM slightly diamagnetic, GM slightly
# paramagnetic, iron-rich deep grey nuclei strongly paramagnetic.
TISSUE_CHI = {CSF: 0.0, GM: 0.02, WM: -0.03, VENTRICLE: 0.0, CAUDATE: 0.06, PUTAMEN: 0.05,
              PALLIDUM: 0.15, THALAMUS: 0.01}
# Deep grey nuclei: code, centre and semi-axes as fractions of the brain radii (left-right mirrored).
NUCLEI = ((CAUDATE, (0.24, 0.22, 0.12), (0.07, 0.13, 0.12)),
          (PUTAMEN, (0.43, 0.05, -0.02), (0.08, 0.20, 0.15)),
          (PALLIDUM, (0.34, 0.02, -0.05), (0.05, 0.12, 0.09)),
          (THALAMUS, (0.13, -0.18, -0.02), (0.11, 0.16, 0.12)))
FULL = ndimage.generate_binary_structure(3, 3)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """A unit-variance Gaussian random field with correlation length `sigma` voxels.

    Random Fourier coefficients under a Gaussian envelope, drawn only where the envelope is
    not negligible, and one inverse real FFT: cheap even for wide fields.
    """
    cutoff = np.sqrt(np.log(1e4) / (2.0 * np.pi**2)) / sigma  # envelope below 1e-4 beyond this
    spectrum = np.zeros(tuple(shape[:-1]) + (shape[-1] // 2 + 1,), dtype=np.complex64)
    freqs = [fft.fftfreq(n) for n in shape[:-1]] + [fft.rfftfreq(shape[-1])]
    keep = [np.flatnonzero(np.abs(f) <= cutoff) for f in freqs]
    grid = np.ix_(*keep)
    k2 = sum(np.reshape(f[idx], [-1 if i == j else 1 for j in range(len(shape))]) ** 2
             for i, (f, idx) in enumerate(zip(freqs, keep)))
    block = tuple(len(idx) for idx in keep)
    coefficients = rng.standard_normal(block, dtype=np.float32) + 1j * rng.standard_normal(block, dtype=np.float32)
    spectrum[grid] = coefficients * np.exp(-2.0 * np.pi**2 * sigma**2 * k2)
    spectrum[0, 0, 0] = 0.0  # zero mean, so the unit variance is the field's, not a random offset
    out = fft.irfftn(spectrum, s=shape)
    return (out / out.std()).astype(np.float32)


@dataclass
class Anatomy:
    """One subject's healthy anatomy: tissue labels, susceptibility and placement helpers."""

    tissue: np.ndarray  # uint8 tissue codes
    chi: np.ndarray  # float32 ppm
    brain: np.ndarray  # bool
    depth: np.ndarray  # approximate distance to the brain surface (voxels)
    centre: np.ndarray  # brain centre (voxel coordinates)
    radii: np.ndarray  # brain semi-axes (voxels)
    veins: list = field(default_factory=list)  # (points (n, 3), chi) polylines
    real: bool = False  # a real brain (prlkit.synth.real_anatomy): tissue distances are mm, not phantom-scaled

    @property
    def size_scale(self) -> float:
        """The brain's size relative to the default phantom's (47-voxel mean semi-axis)."""
        return float(self.radii.mean() / 47.0)

    @property
    def distance_scale(self) -> float:
        """Voxels per millimetre of the default phantom's tissue distances (cortex depth, distance to the
        ventricles): the phantom is drawn small and scales them with its size; a real brain is at 1 mm."""
        return 1.0 if self.real else self.size_scale


def normalised_grid(shape: tuple[int, int, int], centre: np.ndarray, radii: np.ndarray) -> list[np.ndarray]:
    """Coordinates normalised by the brain radii (broadcastable, not materialised)."""
    return [((np.arange(n) - c) / r).reshape([-1 if i == j else 1 for j in range(3)]).astype(np.float32)
            for i, (n, c, r) in enumerate(zip(shape, centre, radii))]


def make_anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> Anatomy:
    """A brain with random smooth shape, folded cortex, ventricles, deep grey nuclei."""
    shape = tuple(shape)
    centre = (np.asarray(shape) - 1) / 2.0 + rng.normal(0, 1.0, 3)
    radii = np.asarray(shape) * np.array([0.40, 0.42, 0.38]) * rng.uniform(0.94, 1.0)
    scale = float(radii.mean() / 47.0)
    ux, uy, uz = normalised_grid(shape, centre, radii)
    r = np.sqrt(ux**2 + uy**2 + (uz - 0.25 * np.minimum(uz, 0) ** 2) ** 2)  # flatter base
    r = r * (1.0 + 0.035 * smooth_noise(rng, shape, 10.0 * scale))
    brain = r < 1.0
    depth = (1.0 - r) * float(radii.min())

    tissue = np.where(brain, WM, BACKGROUND).astype(np.uint8)
    wobble = 0.12 * smooth_noise(rng, shape, 3.0 * scale)
    for code, (cx, cy, cz), (ax, ay, az) in NUCLEI:
        for side in (-1, 1):
            level = ((ux - side * cx) / ax) ** 2 + ((uy - cy) / ay) ** 2 + ((uz - cz) / az) ** 2
            tissue[(level + wobble < 1.0) & brain] = code
    vsize = rng.uniform(0.8, 1.45)  # ventricle size varies (atrophy)
    for side in (-1, 1):
        level = (((ux - side * 0.13) / (0.10 * vsize)) ** 2 + (uy / 0.40) ** 2
                 + ((uz - 0.12 + 0.8 * uy**2) / (0.13 * vsize)) ** 2)
        tissue[(level + wobble < 1.0) & brain] = VENTRICLE
    third = (ux / 0.02) ** 2 + ((uy + 0.05) / 0.16) ** 2 + ((uz + 0.02) / 0.12) ** 2
    tissue[third < 1.0] = VENTRICLE

    folds = smooth_noise(rng, shape, 2.6 * scale)
    sulcal_depth = (7.0 + 3.0 * smooth_noise(rng, shape, 8.0)) * scale
    thickness = 3.0 * scale
    sulcus = (depth < sulcal_depth) & (np.abs(folds) < 0.09)
    cortex = (depth < thickness) | ((depth < sulcal_depth + thickness) & (np.abs(folds) < 0.45))
    tissue[cortex & (tissue == WM)] = GM
    tissue[(sulcus | (depth < 1.0)) & brain] = CSF

    return Anatomy(tissue, tissue_susceptibility(rng, tissue, brain), brain, depth, centre, radii)


def tissue_susceptibility(rng: np.random.Generator, tissue: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Susceptibility (ppm) of a tissue map: each tissue's literature value scaled by ±15 % for this
    participant, plus fine texture inside the brain."""
    chi = np.zeros(tissue.shape, dtype=np.float32)
    for code, value in TISSUE_CHI.items():
        chi[tissue == code] = value * rng.uniform(0.85, 1.15)
    chi += 0.004 * smooth_noise(rng, tissue.shape, 1.5) * brain
    return chi


def tortuous_paths(rng: np.random.Generator, starts: np.ndarray, targets: np.ndarray, n_steps: int,
                   step: float = 0.5, wiggle: float = 0.25) -> np.ndarray:
    """Random walks from `starts` drifting towards `targets`: (n_steps, n_paths, 3) points."""
    position = starts.astype(np.float64)
    heading = targets - position
    heading /= np.linalg.norm(heading, axis=1, keepdims=True) + 1e-9
    points = np.empty((n_steps,) + starts.shape)
    for t in range(n_steps):
        pull = targets - position
        pull /= np.linalg.norm(pull, axis=1, keepdims=True) + 1e-9
        heading = 0.85 * heading + 0.15 * pull + wiggle * rng.normal(size=heading.shape)
        heading /= np.linalg.norm(heading, axis=1, keepdims=True)
        position = position + step * heading
        points[t] = position
    return points


def add_medullary_veins(rng: np.random.Generator, anatomy: Anatomy, n_veins: int) -> None:
    """Thin tortuous veins from under the cortex towards the ventricles, plus internal cerebral veins."""
    scale, depth_scale = anatomy.size_scale, anatomy.distance_scale
    candidates = np.flatnonzero((anatomy.tissue == WM) & (anatomy.depth > 3 * depth_scale)
                                & (anatomy.depth < 6 * depth_scale))
    starts = np.column_stack(np.unravel_index(rng.choice(candidates, n_veins), anatomy.tissue.shape)).astype(float)
    side = np.sign(starts[:, 0] - anatomy.centre[0])
    targets = anatomy.centre + np.column_stack([side * 0.12 * anatomy.radii[0], np.zeros(n_veins),
                                                np.full(n_veins, 0.12 * anatomy.radii[2])])
    paths = tortuous_paths(rng, starts, targets, n_steps=int(70 * scale))
    index = np.clip(np.rint(paths).astype(int), 0, np.asarray(anatomy.tissue.shape) - 1)
    blocked = ~np.isin(anatomy.tissue[index[..., 0], index[..., 1], index[..., 2]], (WM, GM))
    alive = np.cumprod(~blocked, axis=0).astype(bool)  # a vein ends where it reaches the ventricle
    for v in range(n_veins):
        anatomy.veins.append((paths[alive[:, v], v], float(rng.uniform(0.15, 0.3))))
    for side in (-1, 1):  # internal cerebral veins along the roof of the third ventricle
        y = np.linspace(0.25, -0.35, int(60 * scale)) * anatomy.radii[1]
        line = anatomy.centre + np.column_stack([np.full_like(y, side * 0.03 * anatomy.radii[0]), y,
                                                 np.full_like(y, 0.06 * anatomy.radii[2])])
        anatomy.veins.append((line, float(rng.uniform(0.3, 0.45))))


def rasterize_veins(veins: list, shape: tuple[int, int, int], sigma: float = 0.6) -> np.ndarray:
    """Susceptibility of vein polylines with partial volume (a Gaussian cross-section of width `sigma`)."""
    occupancy = np.zeros(shape, dtype=np.float32)
    for points, chi in veins:
        if len(points) == 0:
            continue
        dense = _densify(points)
        index = np.rint(dense).astype(int)
        inside = np.all((index >= 0) & (index < np.asarray(shape)), axis=1)
        i, j, k = index[inside].T
        np.maximum.at(occupancy, (i, j, k), chi)
    line = np.zeros((1, 9, 9), dtype=np.float32)
    line[0, 4, 4] = 1.0
    peak = ndimage.gaussian_filter(np.repeat(line, 9, axis=0), sigma)[4, 4, 4]
    return ndimage.gaussian_filter(occupancy, sigma) / peak


def _densify(points: np.ndarray, spacing: float = 0.4) -> np.ndarray:
    """Points along a polyline no more than `spacing` apart."""
    if len(points) < 2:
        return points
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, arc[-1] + 1e-9, spacing)
    return np.column_stack([np.interp(s, arc, points[:, d]) for d in range(3)])


@dataclass
class RenderedLesion:
    """What was actually drawn for one lesion (the spec may not fit exactly)."""

    spec: LesionSpec
    voxels: int
    centre: tuple[int, int, int]
    confluent: bool


def _candidate_centres(anatomy: Anatomy) -> dict[str, np.ndarray]:
    """Flat voxel indices where lesions of each location class may be centred."""
    wm = anatomy.tissue == WM
    scale = anatomy.distance_scale

    def near(code_mask: np.ndarray, distance: float) -> np.ndarray:
        """Within `distance` voxels (chessboard) of `code_mask`: a separable maximum filter."""
        return ndimage.maximum_filter(code_mask, size=2 * max(1, round(distance)) + 1)

    ventricle = anatomy.tissue == VENTRICLE
    gm = anatomy.tissue == GM
    near_nuclei = near(np.isin(anatomy.tissue, (CAUDATE, PUTAMEN, PALLIDUM, THALAMUS)), 3)
    return {
        "periventricular": np.flatnonzero(wm & near(ventricle, 5 * scale) & ~near(ventricle, 1) & ~near_nuclei),
        "deep": np.flatnonzero(wm & ~near(ventricle, 7 * scale) & ~near(gm, 5 * scale) & ~near_nuclei),
        "juxtacortical": np.flatnonzero(wm & near(gm, 2) & ~near(gm, 1)),
    }


def _box(centre: np.ndarray, radius: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(0, int(c) - radius), min(n, int(c) + radius + 1)) for c, n in zip(centre, shape))


def _lesion_shape(rng: np.random.Generator, box_shape: tuple[int, ...], centre: np.ndarray,
                  volume: int, allowed: np.ndarray) -> np.ndarray:
    """An irregular blob of about `volume` allowed voxels around `centre` (box coordinates)."""
    axes = np.array([1.0, rng.uniform(0.65, 1.0), rng.uniform(0.55, 1.0)])
    rotation = Rotation.random(random_state=rng).as_matrix()
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in box_shape], indexing="ij"), -1) - centre
    local = coords @ rotation / axes
    bumps = ndimage.gaussian_filter(rng.standard_normal(box_shape).astype(np.float32), 2.5)
    level = np.linalg.norm(local, axis=-1) * (1.0 + 0.12 * bumps / (bumps.std() + 1e-9))
    radius = (3 * volume / (4 * np.pi * axes.prod())) ** (1 / 3)
    level[~allowed | (level > 1.5 * radius)] = np.inf  # where space runs out, the lesion stays smaller
    order = np.argsort(level, axis=None, kind="stable")[:volume]
    blob = np.zeros(box_shape, dtype=bool)
    blob.flat[order[np.isfinite(level.flat[order])]] = True
    parts, n = ndimage.label(blob, structure=FULL)
    if n > 1:
        blob = parts == (np.argmax(np.bincount(parts.ravel())[1:]) + 1)
    return blob


def _rim_shell(rng: np.random.Generator, blob: np.ndarray, spec: LesionSpec) -> np.ndarray:
    """Weights (0..1) of a partial paramagnetic shell at the lesion edge, in box coordinates."""
    inside = ndimage.distance_transform_edt(blob)
    outside = ndimage.distance_transform_edt(~blob)
    band = (blob & (inside <= spec.rim_thickness)) | (~blob & (outside <= 1.0))
    centre = np.array(ndimage.center_of_mass(blob))
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in blob.shape], indexing="ij"), -1) - centre
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    modulation = ndimage.gaussian_filter(rng.standard_normal(blob.shape).astype(np.float32), 2.0)
    modulation /= modulation.std() + 1e-9
    score = coords @ direction / (np.linalg.norm(coords, axis=-1) + 1e-6) + 0.25 * modulation
    cut = np.quantile(score[band], 1.0 - spec.rim_coverage)
    shell = band & (score >= cut)
    weight = np.where(~blob, 0.6, 1.0) * np.clip(0.75 + 0.25 * modulation, 0.3, 1.3)
    return shell * weight


def _vein_through(rng: np.random.Generator, centre: np.ndarray, radius: float) -> np.ndarray:
    """A slightly tortuous vein crossing a lesion near its centre (central-vein-like)."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    offset = rng.normal(size=3) * 0.3 * radius
    half = radius + rng.uniform(5, 12)
    start, end = centre + offset - half * direction, centre + offset + half * direction
    return tortuous_paths(rng, start[None], end[None], n_steps=int(2 * half / 0.5) + 4, wiggle=0.12)[:, 0]


def _vein_hugging(rng: np.random.Generator, blob: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """A vein that runs along part of the lesion edge, just outside it, and continues beyond."""
    centre = np.array(ndimage.center_of_mass(blob))
    normal = rng.normal(size=3)
    normal /= np.linalg.norm(normal)
    e1 = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    angles = rng.uniform(0, 2 * np.pi) + np.linspace(0, rng.uniform(0.5, 1.1) * np.pi, 40)
    dirs = np.cos(angles)[:, None] * e1 + np.sin(angles)[:, None] * e2
    radii = np.arange(0, max(blob.shape), 0.5)
    probe = np.rint(centre + dirs[:, None, :] * radii[None, :, None]).astype(int)
    probe = np.clip(probe, 0, np.asarray(blob.shape) - 1)
    hit = blob[probe[..., 0], probe[..., 1], probe[..., 2]]
    edge = np.where(hit.any(axis=1), radii[np.argmax(np.cumsum(hit, axis=1), axis=1)], 1.0) + 1.6
    arc = centre + dirs * edge[:, None]
    tail = rng.uniform(4, 9)
    before = arc[0] - np.linspace(tail, 0.5, 8)[:, None] * (arc[1] - arc[0]) / np.linalg.norm(arc[1] - arc[0])
    after = arc[-1] + np.linspace(0.5, tail, 8)[:, None] * (arc[-1] - arc[-2]) / np.linalg.norm(arc[-1] - arc[-2])
    return np.vstack([before, arc, after]) + origin


def _add_confounder(rng: np.random.Generator, anatomy: Anatomy, kind: str, blob: np.ndarray,
                    origin: np.ndarray, box: tuple[slice, ...], streak_chi: tuple[float, float]) -> None:
    """Add a lesion's confounder: a crossing or hugging vein, or a strong source (`streak_chi` ppm) that streaks."""
    radius = (3 * blob.sum() / (4 * np.pi)) ** (1 / 3)
    centre = np.array(ndimage.center_of_mass(blob)) + origin
    if kind == "vein_cross":
        anatomy.veins.append((_vein_through(rng, centre, radius), float(rng.uniform(0.2, 0.4))))
    elif kind == "vein_hug":
        anatomy.veins.append((_vein_hugging(rng, blob, origin), float(rng.uniform(0.2, 0.4))))
    elif kind == "streak":  # a microbleed-like source a few voxels off the edge
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        source = centre + direction * (radius + rng.uniform(2.0, 4.0))
        grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), -1)
        distance = np.linalg.norm(grid - source, axis=-1)
        strength = rng.uniform(*streak_chi)
        anatomy.chi[box] += (strength * (distance <= rng.uniform(1.0, 1.8))).astype(np.float32)


def render_lesions(rng: np.random.Generator, anatomy: Anatomy, specs: list[LesionSpec],
                   streak_chi: tuple[float, float]) -> tuple[np.ndarray, list[RenderedLesion]]:
    """Draw lesions into the anatomy; returns the uint16 instance map and what was drawn.

    Lesion and rim susceptibility go into `anatomy.chi` in place, veins of confounders are
    appended to `anatomy.veins`, strong streak sources go straight into chi."""
    shape = anatomy.tissue.shape
    labels = np.zeros(shape, dtype=np.uint16)
    candidates = _candidate_centres(anatomy)
    forbidden = np.isin(anatomy.tissue, (BACKGROUND, CSF, VENTRICLE))
    wm_chi = float(np.median(anatomy.chi[anatomy.tissue == WM]))
    drawn: dict[int, RenderedLesion] = {}
    centres: dict[int, np.ndarray] = {}
    for spec in specs:
        radius_est = (3 * spec.volume / (4 * np.pi)) ** (1 / 3)
        if spec.confluent_with in centres:
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            partner = drawn[spec.confluent_with].voxels
            partner_radius = (3 * partner / (4 * np.pi)) ** (1 / 3)
            centre = centres[spec.confluent_with] + direction * 0.8 * (radius_est + partner_radius)
            centre = np.clip(np.rint(centre), 0, np.asarray(shape) - 1)
        else:
            if candidates[spec.location].size == 0:  # a real brain may lack, e.g., deep white matter
                spec.location = max(candidates, key=lambda location: candidates[location].size)
            centre = np.array(np.unravel_index(rng.choice(candidates[spec.location]), shape), dtype=float)
        reach = int(np.ceil(2.2 * radius_est)) + 4
        box = _box(centre, reach, shape)
        origin = np.array([s.start for s in box], dtype=float)
        others = labels[box] > 0
        if spec.confluent_with in centres:  # may touch its partner, not the rest
            keep_off = ndimage.binary_dilation(others & (labels[box] != spec.confluent_with), structure=FULL) | others
        else:
            keep_off = ndimage.binary_dilation(others, structure=FULL, iterations=2)
        allowed = ~forbidden[box] & ~keep_off
        if spec.location != "juxtacortical":
            allowed &= anatomy.tissue[box] != GM
        blob = _lesion_shape(rng, labels[box].shape, centre - origin, spec.volume, allowed)
        if not blob.any():
            continue
        labels[box][blob] = spec.index
        heterogeneity = ndimage.gaussian_filter(rng.standard_normal(blob.shape).astype(np.float32), 1.2)
        lesion_chi = wm_chi + spec.core_delta_ppm + 0.006 * heterogeneity / (heterogeneity.std() + 1e-9)
        anatomy.chi[box][blob] = lesion_chi[blob]
        if spec.true_rim:
            shell = _rim_shell(rng, blob, spec)
            anatomy.chi[box] += (spec.rim_strength_ppm * shell * ~forbidden[box]).astype(np.float32)
        com = np.array(ndimage.center_of_mass(blob))
        _add_confounder(rng, anatomy, spec.confounder, blob, origin, box, streak_chi)
        centres[spec.index] = com + origin
        drawn[spec.index] = RenderedLesion(spec, int(blob.sum()), tuple(int(v) for v in np.rint(com + origin)), False)
    _mark_confluent(labels, drawn)
    return labels, list(drawn.values())


def _mark_confluent(labels: np.ndarray, drawn: dict[int, RenderedLesion]) -> None:
    """Flag every lesion that touches another one (26-neighbourhood)."""
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        grown = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
        own = labels[grown] == index
        ring = ndimage.binary_dilation(own, structure=FULL) & ~own
        if np.any(labels[grown][ring] > 0):
            drawn[index].confluent = True
