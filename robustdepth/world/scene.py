"""Procedural street scenes and camera trajectories, built deterministically from a seed.

World frame (KITTI odometry axes): x right, y DOWN, z along the street's general direction (a curving
street meanders around it by a few degrees); the road surface is the plane y = 0 and the camera rides
1.65 m above it (y ≈ −1.65), as KITTI's does.

The road follows a gently curving centre line x_c(z) (a sum of two long sines; zero amplitude gives a
straight road). Everything else is a list of analytic primitives — boxes, ellipsoids and vertical
(elliptic) cylinders, each with a yaw about the vertical axis — placed along that line: building
façades at varied setbacks, parked cars (body, cabin, four wheels), street lamps, signs, trees and
bushes, and a second row of taller buildings that shows through gaps and crossing streets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

# Primitive kinds.
BOX, ELLIPSOID, CYLINDER = 0, 1, 2

# Materials (ground regions and primitives share one table; see render.MATERIALS).
ROAD, SIDEWALK, KERB, GRASS, FACADE, CAR_PAINT, CAR_GLASS, WHEEL, METAL, SIGN, TRUNK, FOLIAGE, BULB = range(13)
MATERIAL_NAMES = ("road", "sidewalk", "kerb", "grass", "facade", "car_paint", "car_glass", "wheel", "metal",
                  "sign", "trunk", "foliage", "bulb")

# Object ids of the ground regions; primitive instances start at FIRST_INSTANCE_ID.
ROAD_ID, LEFT_SIDEWALK_ID, RIGHT_SIDEWALK_ID, LEFT_VERGE_ID, RIGHT_VERGE_ID = 1, 2, 3, 4, 5
FIRST_INSTANCE_ID = 16

CAMERA_HEIGHT = 1.65
FPS = 10.0
LOOK_AHEAD = 130.0  # metres of scene built beyond the last camera position


@dataclass
class Road:
    """The street's cross-section and centre line; z is the along-road coordinate (≈ arc length)."""

    amplitudes: tuple[float, float]
    periods: tuple[float, float]
    phases: tuple[float, float]
    half_width: float          # kerb to kerb / 2, parking lanes included
    sidewalk: float            # sidewalk width beyond the kerb
    kerb_height: float
    lanes_each_way: int
    crossings: list[tuple[float, float]] = field(default_factory=list)  # (z centre, half width)

    def centre_x(self, z: Tensor) -> Tensor:
        """x of the centre line at z."""
        out = torch.zeros_like(z)
        for a, p, ph in zip(self.amplitudes, self.periods, self.phases):
            out = out + a * torch.sin(2 * math.pi * z / p + ph)
        return out

    def slope(self, z: Tensor) -> Tensor:
        """dx_c/dz, the centre line's slope."""
        out = torch.zeros_like(z)
        for a, p, ph in zip(self.amplitudes, self.periods, self.phases):
            out = out + a * 2 * math.pi / p * torch.cos(2 * math.pi * z / p + ph)
        return out

    def heading(self, z: Tensor) -> Tensor:
        """Road direction as a yaw angle (0 = +z, positive turns towards +x)."""
        return torch.atan(self.slope(z))

    def lateral(self, x: Tensor, z: Tensor) -> Tensor:
        """Signed distance from the centre line (positive = right), to first order in the slope.

        ``(x − centre_x(z))·cos(heading(z))``, with the sines and cosines of one angle per term shared (the
        renderer calls this for most pixels several times a frame)."""
        centre, slope = torch.zeros_like(z), torch.zeros_like(z)
        for a, p, ph in zip(self.amplitudes, self.periods, self.phases):
            angle = 2 * math.pi * z / p + ph
            centre = centre + a * torch.sin(angle)
            slope = slope + a * 2 * math.pi / p * torch.cos(angle)
        return (x - centre) * torch.cos(torch.atan(slope))

    def in_crossing(self, z: Tensor) -> Tensor:
        """True where z lies inside a crossing street."""
        out = torch.zeros_like(z, dtype=torch.bool)
        for zc, hw in self.crossings:
            out |= (z - zc).abs() < hw
        return out

    def raised(self, x: Tensor, z: Tensor) -> Tensor:
        """True where the ground is kerb-high (sidewalks, verges), False on the road and crossings."""
        return (self.lateral(x, z).abs() >= self.half_width) & ~self.in_crossing(z)

    def edge_line(self) -> float:
        """Lateral position of the solid edge line (inside the parking lane)."""
        return self.half_width - 2.2

    def to_json(self) -> dict:
        return {"amplitudes": list(self.amplitudes), "periods": list(self.periods), "phases": list(self.phases),
                "half_width": self.half_width, "sidewalk": self.sidewalk, "kerb_height": self.kerb_height,
                "lanes_each_way": self.lanes_each_way, "crossings": [list(c) for c in self.crossings]}


@dataclass
class Primitives:
    """Struct-of-arrays of analytic primitives (float32 unless noted).

    center P×3, half P×3 (half extents along the primitive's local x = right, y = down, z = along),
    yaw P (radians about the world y axis), kind P (int64: BOX/ELLIPSOID/CYLINDER), material P (int64),
    color P×3 (linear albedo), instance P (int64 object id), param P×4 (material parameters, e.g. a
    façade's window spacing, floor height, window width, window height; negative spacing = no windows).
    """

    center: Tensor
    half: Tensor
    yaw: Tensor
    kind: Tensor
    material: Tensor
    color: Tensor
    instance: Tensor
    param: Tensor

    def __len__(self) -> int:
        return int(self.center.shape[0])

    def subset(self, index: Tensor) -> Primitives:
        """The primitives selected by ``index`` (bool mask or integer indices)."""
        return Primitives(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


class _Builder:
    """Accumulates primitives in Python lists, then packs them into :class:`Primitives`."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.next_instance = FIRST_INSTANCE_ID

    def new_instance(self) -> int:
        self.next_instance += 1
        if self.next_instance >= 65535:
            raise ValueError("scene has more object instances than uint16 ids allow")
        return self.next_instance - 1

    def add(self, center, half, yaw, kind, material, color, instance, param=(-1.0, 0.0, 0.0, 0.0)) -> None:
        self.rows.append((tuple(center), tuple(half), float(yaw), kind, material, tuple(color), instance,
                          tuple(param)))

    def build(self) -> Primitives:
        cols = list(zip(*self.rows)) if self.rows else [[]] * 8
        f32 = torch.float32
        return Primitives(
            center=torch.tensor(cols[0], dtype=f32).reshape(-1, 3),
            half=torch.tensor(cols[1], dtype=f32).reshape(-1, 3),
            yaw=torch.tensor(cols[2], dtype=f32),
            kind=torch.tensor(cols[3], dtype=torch.int64),
            material=torch.tensor(cols[4], dtype=torch.int64),
            color=torch.tensor(cols[5], dtype=f32).reshape(-1, 3),
            instance=torch.tensor(cols[6], dtype=torch.int64),
            param=torch.tensor(cols[7], dtype=f32).reshape(-1, 4),
        )


@dataclass
class Scene:
    """A street, its primitives, its lights and the sun."""

    seed: int
    road: Road
    prims: Primitives
    lamps: Tensor            # L×3 positions of street-lamp bulbs (night / rain light sources)
    sun_direction: Tensor    # 3, unit vector TOWARDS the sun (y is down, so its y is negative)
    z_range: tuple[float, float]


@dataclass
class Trajectory:
    """Camera poses (camera-to-world 4×4, float64) at 10 Hz, speeds (m/s) and ego-static flags.

    ``speeds[t]`` is the speed driven from frame t to frame t+1; ``static[t]`` ⇔ ``speeds[t] == 0``
    (the pose of frame t+1 equals that of frame t).
    """

    poses: np.ndarray
    speeds: np.ndarray
    static: np.ndarray
    lane_offset: float


# ------------------------------------------------------------------------------------------ scene building


def _road_frame(road: Road, z: float, lateral: float) -> tuple[float, float, float]:
    """World (x, z) and yaw of the point at along-road z and signed lateral offset."""
    zt = torch.tensor(z, dtype=torch.float64)
    yaw = float(road.heading(zt))
    x = float(road.centre_x(zt)) + lateral * math.cos(yaw)
    return x, z - lateral * math.sin(yaw), yaw


def _make_road(rng: np.random.Generator, z0: float, z1: float) -> Road:
    curvy = rng.random() < 0.6
    amp = (rng.uniform(3, 9), rng.uniform(1, 3)) if curvy else (0.0, 0.0)
    road = Road(
        amplitudes=amp, periods=(rng.uniform(450, 800), rng.uniform(180, 300)),
        phases=(rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)),
        half_width=0.0, sidewalk=rng.uniform(2.2, 4.0), kerb_height=0.15,
        lanes_each_way=int(rng.integers(1, 3)),
    )
    road.half_width = road.lanes_each_way * 3.2 + 2.2
    z = z0 + rng.uniform(30, 120)
    while z < z1:
        if rng.random() < 0.6:
            road.crossings.append((float(z), float(rng.uniform(5.5, 8.0))))
        z += rng.uniform(90, 180)
    return road


def _crossing_overlap(road: Road, a: float, b: float, margin: float = 1.0) -> bool:
    return any(a < zc + hw + margin and b > zc - hw - margin for zc, hw in road.crossings)


_FACADE_COLORS = [(0.55, 0.45, 0.35), (0.62, 0.58, 0.50), (0.45, 0.22, 0.16), (0.70, 0.66, 0.58),
                  (0.35, 0.38, 0.42), (0.60, 0.50, 0.30), (0.50, 0.27, 0.20), (0.40, 0.42, 0.36),
                  (0.72, 0.70, 0.66), (0.30, 0.30, 0.33)]
_CAR_COLORS = [(0.60, 0.03, 0.03), (0.04, 0.08, 0.30), (0.75, 0.75, 0.75), (0.05, 0.05, 0.05),
               (0.35, 0.36, 0.38), (0.80, 0.80, 0.78), (0.12, 0.25, 0.12), (0.55, 0.40, 0.10)]
_SIGN_COLORS = [(0.05, 0.15, 0.55), (0.65, 0.05, 0.05), (0.75, 0.60, 0.05), (0.05, 0.35, 0.10)]


def _add_buildings(b: _Builder, rng: np.random.Generator, road: Road, side: int, z0: float, z1: float,
                   front: float, row: int) -> None:
    """One row of buildings on one side; ``front`` = lateral distance of the façades from the centre."""
    z = z0 + rng.uniform(0, 6)
    while z < z1:
        length = rng.uniform(8, 30) if row == 0 else rng.uniform(15, 40)
        if _crossing_overlap(road, z, z + length, margin=1.5 if row == 0 else -3.0):
            z += 4.0
            continue
        setback = 0.0 if rng.random() < 0.55 else rng.uniform(1.0, 7.0)
        height = rng.uniform(6, 22) if row == 0 else rng.uniform(15, 35)
        depth = rng.uniform(10, 18)
        lateral = side * (front + setback + depth / 2)
        x, zz, yaw = _road_frame(road, z + length / 2, lateral)
        color = _FACADE_COLORS[int(rng.integers(len(_FACADE_COLORS)))]
        tint = rng.uniform(0.85, 1.15)
        color = tuple(min(c * tint, 0.9) for c in color)
        brick = 1.0 if rng.random() < 0.35 else 0.0
        spacing = rng.uniform(2.2, 3.6)
        param = (spacing, rng.uniform(2.8, 3.4), spacing * rng.uniform(0.4, 0.65), rng.uniform(1.2, 1.8))
        if rng.random() < 0.05:
            param = (-1.0, 0.0, 0.0, 0.0)
        b.add((x, -height / 2, zz), (depth / 2, height / 2, length / 2), yaw, BOX, FACADE, color,
              b.new_instance(), param if brick == 0.0 else (param[0], param[1], param[2], -param[3]))
        z += length + (rng.uniform(0, 2.5) if rng.random() < 0.7 else rng.uniform(4, 12))


def _add_car(b: _Builder, rng: np.random.Generator, road: Road, z: float, lateral: float, length: float) -> None:
    x, zz, yaw = _road_frame(road, z, lateral)
    yaw += rng.normal(0, 0.03)
    inst = b.new_instance()
    color = _CAR_COLORS[int(rng.integers(len(_CAR_COLORS)))]
    c, s = math.cos(yaw), math.sin(yaw)

    def at(lx: float, ly: float, lz: float) -> tuple[float, float, float]:
        return (x + lx * c + lz * s, ly, zz - lx * s + lz * c)

    b.add(at(0, -0.66, 0), (0.88, 0.34, length / 2), yaw, BOX, CAR_PAINT, color, inst)
    b.add(at(0, -1.27, -0.06 * length), (0.76, 0.27, 0.23 * length), yaw, BOX, CAR_GLASS, color, inst)
    for sx in (-1, 1):
        for sz in (-1, 1):
            b.add(at(sx * 0.80, -0.33, sz * 0.32 * length), (0.12, 0.33, 0.33), yaw, ELLIPSOID, WHEEL,
                  (0.03, 0.03, 0.03), inst)


def _add_lamp(b: _Builder, road: Road, z: float, side: int, lamps: list) -> None:
    lat = side * (road.half_width + 0.45)
    x, zz, yaw = _road_frame(road, z, lat)
    inst = b.new_instance()
    grey = (0.28, 0.29, 0.30)
    b.add((x, -3.6, zz), (0.09, 3.6, 0.09), yaw, CYLINDER, METAL, grey, inst)
    xa, za, _ = _road_frame(road, z, lat - side * 0.8)
    b.add((xa, -7.15, za), (0.8, 0.05, 0.05), yaw, BOX, METAL, grey, inst)
    xh, zh, _ = _road_frame(road, z, lat - side * 1.7)
    b.add((xh, -7.1, zh), (0.35, 0.09, 0.2), yaw, BOX, METAL, grey, inst)
    b.add((xh, -7.0, zh), (0.26, 0.06, 0.15), yaw, ELLIPSOID, BULB, (0.9, 0.9, 0.85), inst)
    lamps.append((xh, -6.9, zh))


def _add_sign(b: _Builder, rng: np.random.Generator, road: Road, z: float, side: int) -> None:
    x, zz, yaw = _road_frame(road, z, side * (road.half_width + 0.6))
    inst = b.new_instance()
    b.add((x, -1.4, zz), (0.05, 1.4, 0.05), yaw, CYLINDER, METAL, (0.45, 0.45, 0.47), inst)
    color = _SIGN_COLORS[int(rng.integers(len(_SIGN_COLORS)))]
    if rng.random() < 0.5:
        b.add((x, -2.55, zz - 0.07), (0.32, 0.32, 0.03), yaw, BOX, SIGN, color, inst)
    else:
        b.add((x, -2.55, zz - 0.07), (0.36, 0.36, 0.03), yaw, CYLINDER, SIGN, color, inst)


def _add_tree(b: _Builder, rng: np.random.Generator, road: Road, z: float, lateral: float) -> None:
    x, zz, yaw = _road_frame(road, z, lateral)
    inst = b.new_instance()
    trunk_h = rng.uniform(2.0, 3.5)
    r = rng.uniform(0.12, 0.22)
    base = -road.kerb_height
    b.add((x, base - trunk_h / 2, zz), (r, trunk_h / 2, r), yaw, CYLINDER, TRUNK, (0.20, 0.13, 0.08), inst)
    crown = (rng.uniform(1.3, 2.4), rng.uniform(1.4, 2.6), rng.uniform(1.3, 2.4))
    green = (rng.uniform(0.05, 0.12), rng.uniform(0.14, 0.24), rng.uniform(0.03, 0.07))
    b.add((x, base - trunk_h - crown[1] * 0.7, zz), crown, yaw + rng.uniform(0, 1), ELLIPSOID, FOLIAGE, green,
          inst)


def _add_bush(b: _Builder, rng: np.random.Generator, road: Road, z: float, lateral: float) -> None:
    x, zz, yaw = _road_frame(road, z, lateral)
    half = (rng.uniform(0.6, 1.3), rng.uniform(0.4, 0.8), rng.uniform(0.6, 1.5))
    green = (rng.uniform(0.05, 0.10), rng.uniform(0.12, 0.20), rng.uniform(0.03, 0.06))
    b.add((x, -road.kerb_height - half[1] * 0.8, zz), half, yaw, ELLIPSOID, FOLIAGE, green, b.new_instance())


def _sun_direction(rng: np.random.Generator) -> Tensor:
    elevation = math.radians(rng.uniform(25, 55))
    azimuth = rng.uniform(-math.pi, math.pi)
    return torch.tensor([math.cos(elevation) * math.sin(azimuth), -math.sin(elevation),
                         math.cos(elevation) * math.cos(azimuth)], dtype=torch.float32)


def build_scene(seed: int, z0: float, z1: float) -> Scene:
    """A street covering along-road z ∈ [z0, z1], fully determined by ``seed``."""
    rng = np.random.default_rng(seed)
    road = _make_road(rng, z0, z1)
    b = _Builder()
    lamps: list = []
    front = road.half_width + road.sidewalk
    for side in (-1, 1):
        _add_buildings(b, rng, road, side, z0 - 10, z1, front, row=0)
        _add_buildings(b, rng, road, side, z0 - 10, z1 + 60, front + rng.uniform(22, 30), row=1)
        z = z0 + rng.uniform(0, 8)
        while z < z1:  # parked cars in the parking lane
            length = rng.uniform(3.9, 4.8)
            if rng.random() < 0.55 and not _crossing_overlap(road, z - 3, z + length + 3):
                _add_car(b, rng, road, z + length / 2, side * (road.half_width - 1.1), length)
            z += length + rng.uniform(0.8, 6.0)
        z = z0 + rng.uniform(0, 30)
        while z < z1 + 40:
            if not _crossing_overlap(road, z - 1, z + 1):
                _add_lamp(b, road, z, side, lamps)
            z += rng.uniform(25, 35)
        z = z0 + rng.uniform(0, 15)
        while z < z1:
            if not _crossing_overlap(road, z - 2, z + 2):
                lateral = side * (road.half_width + road.sidewalk - rng.uniform(0.6, 1.0))
                if rng.random() < 0.6:
                    _add_tree(b, rng, road, z, lateral)
                elif rng.random() < 0.5:
                    _add_bush(b, rng, road, z, side * (front + rng.uniform(0.8, 1.5)))
            z += rng.uniform(7, 18)
        for zc, hw in road.crossings:  # a sign before every crossing
            if rng.random() < 0.8:
                _add_sign(b, rng, road, zc - hw - rng.uniform(2, 6), side)
        z = z0 + rng.uniform(10, 60)
        while z < z1:
            if not _crossing_overlap(road, z - 1, z + 1):
                _add_sign(b, rng, road, z, side)
            z += rng.uniform(40, 90)
    return Scene(seed=seed, road=road, prims=b.build(), lamps=torch.tensor(lamps, dtype=torch.float32),
                 sun_direction=_sun_direction(rng), z_range=(z0, z1))


# ------------------------------------------------------------------------------------------ trajectories


def _speed_profile(rng: np.random.Generator, frames: int, stop_probability: float) -> np.ndarray:
    """Speeds (m/s) per frame: cruising at 4–15 m/s with slow variation, maybe one stop (exact zeros)."""
    base = rng.uniform(4.0, 15.0)
    t = np.arange(frames) / FPS
    v = base * (1 + 0.12 * np.sin(2 * np.pi * t / rng.uniform(6, 14) + rng.uniform(0, 6)))
    v = np.clip(v, 4.0, 15.0)
    if frames >= 8 and rng.random() < stop_probability:
        start = int(rng.integers(frames // 5, max(frames // 5 + 1, frames // 2)))
        ramp = max(2, min(12, int(base / 2.0)))
        hold = int(rng.integers(3, max(4, frames // 4)))
        for i in range(frames):
            if start <= i < start + ramp:
                v[i] *= 1 - (i - start + 1) / (ramp + 1)
            elif start + ramp <= i < start + ramp + hold:
                v[i] = 0.0
            elif start + ramp + hold <= i < start + 2 * ramp + hold:
                v[i] *= (i - start - ramp - hold + 1) / (ramp + 1)
    return np.round(v, 4)


def _jitter(s: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Smooth jitter as a function of distance travelled (so a stopped car does not move)."""
    out = np.zeros_like(s)
    for _ in range(3):
        out += np.sin(2 * np.pi * s / rng.uniform(6, 40) + rng.uniform(0, 2 * np.pi))
    return amplitude * out / 3


def build_trajectory(seed: int, road: Road, frames: int, stop_probability: float) -> Trajectory:
    """Camera path along the right-hand lane with small yaw/pitch/lateral/bounce jitter."""
    rng = np.random.default_rng(seed + 7_919)
    speeds = _speed_profile(rng, frames, stop_probability)
    s = np.concatenate([[0.0], np.cumsum(speeds[:-1] / FPS)])  # distance travelled at each frame
    lane = 1.6 + 3.2 * float(rng.integers(0, road.lanes_each_way))
    lat = lane + _jitter(s, rng, 0.15)
    yaw_j = _jitter(s, rng, 0.012)
    pitch_j = _jitter(s, rng, 0.006)
    bounce = _jitter(s, rng, 0.015)
    # z advances so that the travelled arc length matches the speeds (Euler steps on dz = ds / sqrt(1+x'²)).
    zs = np.zeros(frames)
    for i in range(1, frames):
        slope = float(road.slope(torch.tensor(zs[i - 1], dtype=torch.float64)))
        zs[i] = zs[i - 1] + (s[i] - s[i - 1]) / math.sqrt(1 + slope * slope)
    zt = torch.tensor(zs, dtype=torch.float64)
    heading = road.heading(zt).numpy()
    cx = road.centre_x(zt).numpy()
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        h = heading[i] + yaw_j[i]
        p = pitch_j[i]
        ry = np.array([[math.cos(h), 0, math.sin(h)], [0, 1, 0], [-math.sin(h), 0, math.cos(h)]])
        rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
        poses[i, :3, :3] = ry @ rx
        poses[i, :3, 3] = [cx[i] + lat[i] * math.cos(heading[i]), -CAMERA_HEIGHT + bounce[i],
                           zs[i] - lat[i] * math.sin(heading[i])]
    return Trajectory(poses=poses, speeds=speeds, static=speeds == 0.0, lane_offset=lane)


def build_sequence(seed: int, frames: int, stop_probability: float) -> tuple[Scene, Trajectory]:
    """Scene + trajectory for one sequence: the scene spans the whole drive plus a look-ahead margin."""
    speeds = _speed_profile(np.random.default_rng(seed + 7_919), frames, stop_probability)  # as in the trajectory
    distance = float(speeds[:-1].sum() / FPS)
    scene = build_scene(seed, -40.0, distance + LOOK_AHEAD)
    return scene, build_trajectory(seed, scene.road, frames, stop_probability)
