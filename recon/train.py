"""Training: any registered model, on cube folders, ARAD RGB/cube pairs or synthetic scenes.

Deep models (``kind="deep"``) learn from random crops: a cube crop is drawn (from a folder in any
hsdata format, or from a pool of :func:`hsdata.synth.generate_scene` scenes, train split,
refreshed one scene per step), optionally scaled in brightness (x0.5..x2, log-uniform) and
relit (``illuminant_aug``: multiplied by a smooth random spectral curve, :func:`relight_curve` —
the same surfaces under an illuminant no library holds), passed through :func:`camera.simulate`
for the track (so noise, mosaic and JPEG are drawn afresh each time), and flipped at random; with
``rgb`` the RGB comes from existing files paired by stem instead. Loss: MRAE
(``|p - g| / max(g, 1e-3)``, as the NTIRE 2020 winners trained), L1 or MSE, plus optionally
``css_loss`` times the same loss on the RGB both spectra project to (AWAN's prior);
Adam with a per-step cosine schedule (MST++ recipe, Cai et al. CVPR-W 2022); the last epoch's
weights are written, or with ``keep="best"`` those of the epoch with the lowest validation MRAE
(the MST++ toolbox's selection — the validation scenes then choose the weights, so judge them on
other scenes, as ``benchmarks/heldout.py`` does); a checkpoint after
each epoch (``--resume`` continues it exactly: every epoch's randomness derives from
``(seed, epoch)``); validation MRAE per epoch through the inference engine on fixed scenes
(synthetic test split, seeds 0..N-1, or a cube folder). With ``ema`` (``--ema 0.999``) an
exponential moving average of the weights (and BatchNorm statistics), updated after every step
(:class:`torch.optim.swa_utils.AveragedModel`), is what is validated, kept and written: it
smooths out the step-to-step noise of small CPU batches.

With ``base`` (``--base linear``) a deep model learns a correction to a pixel-wise baseline
fitted first on the training pixels (:class:`hstool.recon.residual.ResidualOnBase`): it starts
as that baseline and trains from there.

With ``init`` (``--init W.safetensors``) a deep model starts from the weights of an earlier run
of the same architecture and configuration (a bundled file, say) under a fresh optimiser and
schedule: fine-tuning on new data, or a second, longer stage. The new file records the starting
file's hash and its ``train_command``, so the chain stays reproducible.

Pixel-wise models (``kind="pixel"``) are fitted in closed form on pixels sampled from the same
sources (``fit(rgb_pixels, spectra)`` classmethod of the module); an option only training uses
(:data:`DEEP_ONLY`: ``--epochs``, ``--batch``, ``--ema``, ...) set for one is refused, not ignored.

The weights file gets the full metadata (:mod:`hstool.recon.weights`), including the exact
``hstool train`` command that reproduces it.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import shlex
import time
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hstool.hsdata import (
    ARAD_WAVELENGTHS,
    Cube,
    HsError,
    check_writable,
    input_files,
    list_files,
    read_cube,
    read_rgb,
)
from hstool.hsdata.atomic import check_output_folder
from hstool.hsdata.errors import brief, check_positive

from .catalog import weights_name
from .engine import predict, resolve_device, reuse_freed_memory
from .grow import grow_state, grown_from
from .registry import build_model, model_spec
from .weights import INPUT_NORM, create_model, file_sha256, read_metadata, round_to_stored, save_weights

#: Suffixes the NTIRE datasets append to an RGB image's stem (stripped to pair with its cube).
LOSSES = ("mrae", "l1", "mse", "rel-l1", "log-l1")
#: default denominator floor of the relative losses (``--loss-floor``)
LOSS_FLOOR = 1e-3
#: which epoch's weights ``train`` writes: the last, or the one with the lowest validation MRAE
KEEP = ("last", "best")
#: synthetic validation scenes unless --val-scenes says otherwise (a cube folder: all of it)
VAL_SCENES = 4
#: options naming files or folders (compared resolved when a run is resumed)
PATH_OPTIONS = ("--data", "--val", "--rgb", "--val-rgb", "--init")
#: :class:`TrainConfig` fields that only training by gradient steps uses (``--epochs`` ... ``--resume``):
#: a pixel model refuses each one set away from its default (its fit reads data, track, rgb, seed,
#: the augmentations, scenes, scene size, pixels, config; validation, device, fp16, speed as any run)
DEEP_ONLY = ("epochs", "steps_per_epoch", "batch", "crop", "lr", "loss", "loss_floor", "rel_floor", "mrae_mix",
             "keep", "css_loss", "ema", "base", "init", "resume")
#: what a model constructor (or a probe forward) raises for a configuration it cannot build
BUILD_ERRORS = (ValueError, AssertionError, RuntimeError, IndexError, ZeroDivisionError)


#: standard deviations of the Legendre P1..P3 coefficients of the log relighting curve: P1 (a
#: blue-red tilt of about +-35 % at the ends, as between CIE D40 and D100) dominates
RELIGHT_SIGMA = (0.3, 0.15, 0.1)


def relight_curve(rng: np.random.Generator, wavelengths: np.ndarray) -> np.ndarray:
    """A smooth positive spectral factor with unit mean, ``exp(sum_k a_k P_k(x))`` over the band
    range mapped to x in [-1, 1], ``a_k ~ N(0, RELIGHT_SIGMA[k])``: multiplying a radiance cube by
    it changes the illuminant (radiance = reflectance x illuminant) without touching the surfaces."""
    wl = np.asarray(wavelengths, np.float64)
    x = 2 * (wl - wl[0]) / max(float(wl[-1] - wl[0]), 1e-9) - 1
    coef = np.concatenate([[0.0], rng.normal(0.0, RELIGHT_SIGMA)])
    curve = np.exp(np.polynomial.legendre.legval(x, coef))
    return (curve / curve.mean()).astype(np.float32)


def _rescale_paired_rgb(rgb: np.ndarray, k: np.ndarray, rgb_path: Path) -> np.ndarray:
    """An existing RGB image under the cube's gain ``k``: it can be rescaled (clipped to [0, 1]),
    not relit, so a per-band gain is refused."""
    if not np.all(k == k[0]):
        raise HsError("--illuminant-aug needs RGB simulated from the cubes; it cannot relight an existing "
                      "RGB image (drop --rgb or --illuminant-aug)", rgb_path)
    return np.clip(rgb * k[0], 0, 1)


@dataclass
class TrainConfig:
    """Every option of ``hstool train``; :meth:`command` renders the equivalent command line."""

    model: str
    out: Path
    data: str = "synth"
    track: str | None = "clean"  # None: clean, and --rgb images pair by stem whatever track their names say
    val: str | None = "synth"
    rgb: str | None = None
    val_rgb: str | None = None
    epochs: int = 10
    steps_per_epoch: int = 200
    batch: int = 8
    crop: int = 64
    lr: float = 4e-4
    loss: str = "mrae"
    loss_floor: float = LOSS_FLOOR
    rel_floor: float = 0.0
    mrae_mix: float = 0.0
    seed: int = 0
    brightness_aug: bool = False
    illuminant_aug: bool = False
    keep: str = "last"
    css_loss: float = 0.0
    ema: float = 0.0
    base: str | None = None
    device: str = "auto"
    resume: Path | None = None
    init: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    scenes: int = 16
    scene_size: int = 256
    pixels: int = 200_000
    val_scenes: int | None = None  # synthetic: 4; a cube folder: all of it
    val_size: int = 256
    fp16: bool | None = None
    int8: bool = False
    overwrite: bool = False
    speed: bool = True
    keep_checkpoint: bool = False  # OUT.ckpt stays after a finished run (to --resume it with more epochs)

    def __post_init__(self):
        from hstool.camera.pipeline import track_name

        # no --track with --rgb: the images are your camera's, paired by stem whatever track a name says
        self.images_by_stem = self.track is None and bool(self.rgb)
        self.track = track_name(self.track or "clean")  # stored as hstool writes it: Real-World is realworld
        # the keywords as the command line says them, in any case (SYNTH is synth, not a folder)
        if isinstance(self.data, str) and self.data.lower() == "synth":
            self.data = "synth"
        if isinstance(self.val, str) and self.val.lower() in ("synth", "none"):
            self.val = None if self.val.lower() == "none" else "synth"
        self.loss, self.keep = str(self.loss).lower(), str(self.keep).lower()

    def command(self) -> str:
        spec = model_spec(self.model)
        args = ["hstool", "train", "--model", self.model, "--data", str(self.data)]
        args += [] if self.images_by_stem else ["--track", self.track]
        args += ["--val", str(self.val or "none")]
        if self.rgb:
            args += ["--rgb", str(self.rgb)]
        if self.val_rgb:
            args += ["--val-rgb", str(self.val_rgb)]
        if spec.kind == "deep":
            args += ["--epochs", str(self.epochs), "--steps-per-epoch", str(self.steps_per_epoch),
                     "--batch", str(self.batch), "--crop", str(self.crop), "--lr", f"{self.lr:g}",
                     "--loss", self.loss]
            if self.loss_floor != LOSS_FLOOR:
                args += ["--loss-floor", f"{self.loss_floor:g}"]
            if self.rel_floor:
                args += ["--rel-floor", f"{self.rel_floor:g}"]
            if self.mrae_mix:
                args += ["--mrae-mix", f"{self.mrae_mix:g}"]
        else:
            args += ["--pixels", str(self.pixels)]
        args += ["--scenes", str(self.scenes), "--scene-size", str(self.scene_size)]
        if self.val_scenes is not None:
            args += ["--val-scenes", str(self.val_scenes)]
        args += ["--val-size", str(self.val_size), "--seed", str(self.seed)]
        if self.fp16 is not None:
            args.append("--fp16" if self.fp16 else "--fp32")
        if self.int8:
            args.append("--int8")
        if self.brightness_aug:
            args.append("--brightness-aug")
        if self.illuminant_aug:
            args.append("--illuminant-aug")
        if self.keep != "last" and spec.kind == "deep":
            args += ["--keep", self.keep]
        if self.css_loss and spec.kind == "deep":
            args += ["--css-loss", f"{self.css_loss:g}"]
        if self.ema and spec.kind == "deep":
            args += ["--ema", f"{self.ema:g}"]
        if self.base and spec.kind == "deep":
            args += ["--base", self.base, "--pixels", str(self.pixels)]
        if self.init and spec.kind == "deep":
            args += ["--init", weights_name(self.init)]  # bundled ones as NAME:TRACK
        for k, v in sorted(self.config.items()):
            args += ["--config", f"{k}={v}"]
        args += ["--out", str(self.out)]
        return shlex.join(args)


def _options(command: str) -> dict[str, list[str]]:
    """``--flag value ...`` of a :meth:`TrainConfig.command` line: each flag's values, in order."""
    options: dict[str, list[str]] = {}
    flag = None
    for token in shlex.split(command)[2:]:
        if token.startswith("--"):
            flag = token
            options.setdefault(flag, [])
        elif flag is not None:
            options[flag].append(token)
    return options


def _same_paths(options: dict[str, list[str]]) -> dict[str, list[str]]:
    """``options`` with the folders and files they name resolved (tr/ and /home/me/tr are one)."""
    return {k: [os.path.realpath(v) if k in PATH_OPTIONS and v not in ("synth", "none") else v for v in vals]
            for k, vals in options.items()}


# ---------------------------------------------------------------- data


def _images_of(files: list[Path], folder: str, track_name: str, by_stem: bool = False) -> dict[Path, Path | None]:
    """Each cube's RGB image in ``folder`` by the rule ``score --rgb`` pairs by (the track's own
    image among several, never another track's), or None. ``by_stem``: an image named for another
    track (``X_RealWorld.jpg`` on the default clean track) is taken too when it is the cube's only one."""
    from hstool.camera import track

    from .evaluate import find_rgb

    images, suffix = list_files(folder, kinds=("image",)), track(track_name).suffix

    def find(stem: str) -> Path | None:
        try:
            return find_rgb(images, stem, suffix, missing_ok=True)
        except HsError:
            if not by_stem:
                raise
            return find_rgb(images, stem, "", missing_ok=True)

    return {f: find(f.stem) for f in files}


def training_files(cfg: TrainConfig) -> tuple[list[Path], dict[Path, Path], list[Path]]:
    """The cubes of ``cfg.data`` a run trains on, their RGB images (``--rgb``: paired by the rule
    ``score --rgb`` pairs by, the track's own image among several, never another track's) and the
    cubes left out for having none: ``(files, pairs, unpaired)``."""
    files = list_files(cfg.data)
    if not cfg.rgb:
        return files, {}, []
    pairs = {f: p for f, p in _images_of(files, cfg.rgb, cfg.track, cfg.images_by_stem).items() if p is not None}
    if not pairs:
        raise HsError("no RGB image pairs with a cube by stem (e.g. ARAD_HS_0001_clean.png with ARAD_HS_0001.mat)",
                      cfg.rgb)
    return sorted(pairs), pairs, [f for f in files if f not in pairs]


class CubeSource:
    """Where training cubes come from: synthetic scenes, a cube folder, or RGB/cube pairs."""

    def __init__(self, cfg: TrainConfig, wavelengths: np.ndarray):
        from hstool.camera import track

        self.cfg = cfg
        self.wavelengths = wavelengths
        self.pipeline = track(cfg.track)
        self.align = 1 if cfg.track == "clean" else 16  # keep Bayer phase and JPEG blocks aligned
        self.files: list[Path] = []
        self.pairs: dict[Path, Path] = {}
        self.unpaired: list[Path] = []  # cubes left out: no RGB image of their stem
        self._cache: OrderedDict[Path, Cube] = OrderedDict()
        self._means: dict[int, tuple[Cube, np.ndarray]] = {}  # mean spectra, for an automatic exposure
        self.pool: list[Cube] = []
        if cfg.data != "synth":
            self.files, self.pairs, self.unpaired = training_files(cfg)
        elif cfg.rgb:
            raise HsError("--rgb pairs need a cube folder as --data, not synth")

    def describe(self) -> tuple[str, str]:
        """(description, sha256) of the training data."""
        h = hashlib.sha256()
        if self.cfg.data == "synth":
            from hstool.hsdata import synth

            h.update(Path(synth.__file__).read_bytes())
            h.update(f"train:{self.cfg.seed}:{self.cfg.scenes}:{self.cfg.scene_size}".encode())
            return ((f"synthetic scenes (hsdata.synth, train split, {self.cfg.scene_size}x{self.cfg.scene_size}, "
                    f"seeds drawn from --seed {self.cfg.seed}), RGB simulated on the fly for track "
                    f"'{self.cfg.track}'"), h.hexdigest())
        for f in self.files:  # every byte of every file the cube is read from, and of its image
            h.update(f.name.encode())
            for part in [*input_files(f), *([self.pairs[f]] if f in self.pairs else [])]:
                with open(part, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
        what = f"{len(self.files)} cubes from {self.cfg.data}"
        what += f" paired with RGB from {self.cfg.rgb}" if self.pairs else f", RGB simulated for track '{self.cfg.track}'"
        return what, h.hexdigest()

    def _scene(self, rng: np.random.Generator) -> Cube:
        from hstool.hsdata import synth

        s = self.cfg.scene_size
        return synth.generate_scene(int(rng.integers(2**31)), size=(s, s), wavelengths=self.wavelengths,
                                    split="train")

    def _read(self, path: Path) -> Cube:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        cube = read_cube(path)
        if not _same_grid(cube.wavelengths, self.wavelengths):
            raise HsError(f"cube has {cube.bands} bands {cube.wavelengths[0]:g}-{cube.wavelengths[-1]:g} nm; "
                          f"the model expects {self.wavelengths.size}", path)
        self._cache[path] = cube
        while len(self._cache) > 8:
            self._cache.popitem(last=False)
        return cube

    def start_epoch(self, rng: np.random.Generator) -> None:
        if self.cfg.data == "synth":
            self.pool = [self._scene(rng) for _ in range(max(1, self.cfg.scenes))]

    def refresh(self, rng: np.random.Generator) -> None:
        """Replace one pooled synthetic scene (one generation per step)."""
        if self.pool:
            self.pool[int(rng.integers(len(self.pool)))] = self._scene(rng)

    def _pick(self, rng: np.random.Generator) -> tuple[Cube, Path | None]:
        if self.pool:
            return self.pool[int(rng.integers(len(self.pool)))], None
        path = self.files[int(rng.integers(len(self.files)))]
        return self._read(path), path

    def _gain(self, rng: np.random.Generator, wavelengths: np.ndarray) -> np.ndarray:
        """Per-band factor of one training cube: brightness (x0.5..x2, log-uniform) times a
        relighting curve, each only when enabled (so disabled options draw nothing)."""
        k = np.ones(len(wavelengths), np.float32)
        if self.cfg.brightness_aug:
            k *= np.float32(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        if self.cfg.illuminant_aug:
            k *= relight_curve(rng, wavelengths)
        return k

    def _mean_spectrum(self, cube: Cube) -> np.ndarray | None:
        """The cube's mean spectrum (negatives as 0), once per cube, for an automatically exposed
        track (a pass over the whole cube, 17 ms for 482x512, against 0.7 ms to image a crop)."""
        if self.pipeline.target_mean is None:
            return None
        key = id(cube)
        if key not in self._means or self._means[key][0] is not cube:  # an id outlives a replaced scene
            if len(self._means) > 64:
                self._means.clear()
            self._means[key] = (cube, np.clip(np.asarray(cube.data, np.float64), 0, None).mean(axis=(0, 1)))
        return self._means[key][1]

    def crop(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """A random (rgb (c, c, 3), cube (c, c, B)) training pair, flipped at random."""
        from hstool.camera import simulate
        from hstool.camera.pipeline import exposed_like

        cube, path = self._pick(rng)
        h, w = cube.height, cube.width
        if h < size or w < size:
            raise HsError(f"cube is {h}x{w}, smaller than --crop {size}", path)
        a = self.align
        y = int(rng.integers((h - size) // a + 1)) * a
        x = int(rng.integers((w - size) // a + 1)) * a
        k = self._gain(rng, cube.wavelengths)
        # noise below 0 (calibrated captures) reads as 0, as the simulated image and validation read it
        gt = np.maximum(np.asarray(cube.data[y:y + size, x:x + size], np.float32) * k, 0)
        if path is not None and path in self.pairs:
            rgb_full = read_rgb(self.pairs[path])
            if rgb_full.shape[:2] != (h, w):
                raise HsError(f"RGB is {rgb_full.shape[:2]}, cube is {(h, w)}", self.pairs[path])
            rgb = _rescale_paired_rgb(rgb_full[y:y + size, x:x + size], k, self.pairs[path])
        else:  # an automatic exposure is the whole scene's, as the image of the scene has it, not the crop's
            pipe = exposed_like(self.pipeline, cube, k, self._mean_spectrum(cube))
            rgb = simulate(Cube(gt, cube.wavelengths, dict(cube.meta)), pipe, rng)
        if rng.random() < 0.5:
            rgb, gt = rgb[:, ::-1], gt[:, ::-1]
        if rng.random() < 0.5:
            rgb, gt = rgb[::-1], gt[::-1]
        return np.ascontiguousarray(rgb), np.ascontiguousarray(gt)

    def pixels(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` random (rgb, spectrum) pixels from ``scenes`` whole scenes or files."""
        from hstool.camera import simulate

        n_src = max(1, self.cfg.scenes if self.cfg.data == "synth" else min(self.cfg.scenes, len(self.files)))
        per = math.ceil(count / n_src)
        rgbs, specs = [], []
        order = rng.permutation(len(self.files)) if self.files else None
        for i in range(n_src):
            if self.cfg.data == "synth":
                cube, path = self._scene(rng), None
            else:
                path = self.files[int(order[i % len(order)])]
                cube = self._read(path)
            k = self._gain(rng, cube.wavelengths)
            gt = np.maximum(np.asarray(cube.data, np.float32) * k, 0)
            if path is not None and path in self.pairs:
                rgb = _rescale_paired_rgb(read_rgb(self.pairs[path]), k, self.pairs[path])
            else:
                rgb = simulate(Cube(gt, cube.wavelengths, dict(cube.meta)), self.pipeline, rng)
            idx = rng.choice(gt.shape[0] * gt.shape[1], min(per, gt.shape[0] * gt.shape[1]), replace=False)
            rgbs.append(rgb.reshape(-1, 3)[idx])
            specs.append(gt.reshape(-1, gt.shape[2])[idx])
        return np.concatenate(rgbs)[:count], np.concatenate(specs)[:count]


def validation_files(cfg: TrainConfig) -> tuple[list[Path], dict[Path, Path]]:
    """The cubes of a ``--val`` folder (all, or the first ``--val-scenes``) and, when training on
    the user's own images (``--rgb``), the image of each (in ``--val-rgb``, else the ``--rgb``
    folder): their camera is the user's, not the track's, so none may be simulated."""
    files = list_files(cfg.val)[: cfg.val_scenes]
    if not cfg.rgb:
        return files, {}
    folder = cfg.val_rgb or cfg.rgb
    pairs = _images_of(files, folder, cfg.track, cfg.images_by_stem)
    missing = [f.name for f, image in pairs.items() if image is None]
    if missing:
        raise HsError(f"--rgb trains on your camera's images, so validation needs theirs too: no image for "
                      f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''} (give --val-rgb DIR, or --val none)",
                      folder)
    return files, pairs


def check_held_out(cfg: TrainConfig, train_files: list[Path], val_files: list[Path]) -> None:
    """Refuse validation cubes that are training cubes: the same file, or a copy of one by name
    (X.mat and X.hdr are one scene in two formats)."""
    stems = {f.stem for f in train_files} | {f.resolve() for f in train_files}
    shared = [f.name for f in val_files if f.stem in stems or f.resolve() in stems]
    if shared:
        raise HsError(f"validation cubes are training cubes too ({', '.join(shared[:5])}"
                      f"{', ...' if len(shared) > 5 else ''}): validation must be held out", cfg.val)


def validation_set(cfg: TrainConfig, wavelengths: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed (rgb, cube) pairs: synthetic test-split scenes 0..N-1 (RGB noise seeded by index)
    or the cubes of a folder (:func:`validation_files`; negatives within the noise clipped to 0),
    imaged by the track's camera or, with ``--rgb``, their own images."""
    from hstool.camera import simulate, track

    if not cfg.val:
        return []
    pipeline = track(cfg.track)
    cubes, images = [], {}
    if cfg.val == "synth":
        from hstool.hsdata import synth

        cubes = [synth.generate_scene(i, size=(cfg.val_size, cfg.val_size), wavelengths=wavelengths, split="test")
                 for i in range(cfg.val_scenes or VAL_SCENES)]
    else:
        files, images = validation_files(cfg)
        cubes = [read_cube(p) for p in files]
        for path, cube in zip(files, cubes):
            cube.meta["source"] = str(path)
        for cube in cubes:  # before any training: the model reconstructs the data's grid
            if cube.wavelengths.size != wavelengths.size or not np.allclose(cube.wavelengths, wavelengths, atol=0.01):
                raise HsError(f"validation cube has {cube.wavelengths.size} bands ({cube.wavelengths[0]:g}-"
                              f"{cube.wavelengths[-1]:g} nm), the training data {wavelengths.size} "
                              f"({wavelengths[0]:g}-{wavelengths[-1]:g} nm)", cube.meta.get("source"))
    # simulate clips negatives within the noise (calibrated captures read 0 +- noise; it refuses
    # larger ones, naming the file): the ground truth is clipped alike, and validate skips those zeros
    pairs = []
    for i, c in enumerate(cubes):
        image = images.get(Path(c.meta.get("source", "")))
        if image is not None:
            rgb = read_rgb(image)
            if rgb.shape[:2] != c.data.shape[:2]:
                raise HsError(f"image is {rgb.shape[0]}x{rgb.shape[1]}, its cube {c.height}x{c.width}", image)
        else:
            rgb = simulate(c, pipeline, i)
        pairs.append((rgb, np.maximum(np.asarray(c.data, np.float32), 0)))
    return pairs


def validate(model: torch.nn.Module, pairs, device) -> float | None:
    """Mean MRAE (zeros in the ground truth skipped) over the validation pairs, via the engine."""
    if not pairs:
        return None
    from .metrics import mrae

    was_training = model.training
    model.eval()
    scores = [mrae(predict(model, rgb, device), gt, ignore_zeros=True) for rgb, gt in pairs]
    model.train(was_training)
    return float(np.mean(scores))


def loss_fn(name: str, floor: float = LOSS_FLOOR, rel_floor: float = 0.0, mrae_mix: float = 0.0):
    """The training criterion on (N, B, H, W) tensors.

    ``mrae`` is the metric itself, ``|p - g| / g``, with ``g`` floored at ``floor``. ``rel-l1``
    divides by each pixel's mean over bands instead (floored likewise): as exposure-free as MRAE, but
    a band that is nearly black does not outweigh the rest of its pixel. Under MRAE a band the RGB
    says little about (the clean camera's red channel has 4 % of its peak sensitivity at 680 nm) is
    best predicted low: too low costs at most 1, too high costs ``p / g`` without bound, so a few
    training pixels with a black red end pull every prediction there towards zero. ``rel_floor``
    (mrae only) is the middle way: ``g`` is also floored at ``rel_floor`` times its pixel's mean,
    which bounds that pull while a band that is black in a bright pixel (no blue in a yellow paint)
    still costs far more than under rel-l1 when predicted above zero. ``mrae_mix`` (not with mrae)
    adds that weight times MRAE (same floor) to the loss: the other way to keep both, since the
    main loss holds the dim bands up while the MRAE term still charges a black band predicted above
    zero at ``1 / floor`` per unit. ``log-l1`` is ``|log(p + floor) - log(g + floor)|`` (``p``
    clipped at 0): MRAE to first order where ``g`` is well above the floor, but symmetric, so a band
    predicted ten times too low costs as much as one ten times too high. It is meant for models
    whose output is an exponential (``basisunet``): under MRAE the gradient with respect to the
    log-output of a band predicted far too low is ``p / g``, which vanishes, so such a band stays
    collapsed; under log-l1 it is ``p / (p + floor)``, about 1 until ``p`` nears the floor.
    """
    if mrae_mix:
        if name == "mrae":
            raise HsError("--mrae-mix adds MRAE to another loss; it cannot be used with --loss mrae")
        main, metric = loss_fn(name, floor), loss_fn("mrae", floor)
        return lambda p, g: main(p, g) + mrae_mix * metric(p, g)
    if name == "mrae" and rel_floor:
        return lambda p, g: torch.mean(
            torch.abs(p - g) / torch.maximum(g, rel_floor * g.mean(dim=1, keepdim=True)).clamp(min=floor))
    if name == "mrae":
        return lambda p, g: torch.mean(torch.abs(p - g) / g.clamp(min=floor))
    if name == "rel-l1":
        return lambda p, g: torch.mean(torch.abs(p - g) / g.mean(dim=1, keepdim=True).clamp(min=floor))
    if name == "log-l1":
        return lambda p, g: torch.mean(torch.abs(torch.log(p.clamp(min=0) + floor) - torch.log(g + floor)))
    if name == "l1":
        return lambda p, g: torch.mean(torch.abs(p - g))
    if name == "mse":
        return lambda p, g: torch.mean((p - g) ** 2)
    raise HsError(f"unknown loss '{name}' (use {', '.join(LOSSES)})")


def with_css_loss(criterion, matrix: np.ndarray, tau: float):
    """``criterion(p, g) + tau * criterion(p @ M, g @ M)`` on (N, B, H, W) tensors, ``M`` the
    camera's (B, 3) spectrum -> RGB map: AWAN's camera-spectral-sensitivity prior (Li et al.,
    CVPR-W 2020), which charges a spectrum for the RGB it would have produced (their code uses L1
    on quantised RGB; here the training loss itself, differentiable). MRAE is exposure-free, so the
    map at unit exposure serves every track."""
    if not tau:
        return criterion
    m = torch.as_tensor(np.asarray(matrix), dtype=torch.float32)

    def loss(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        mm = m.to(p.device)
        project = lambda x: torch.einsum("nbhw,bc->nchw", x, mm)
        return criterion(p, g) + tau * criterion(project(p), project(g))

    return loss


def measure_speed(model: torch.nn.Module, device: torch.device, repeats: int = 5) -> dict[str, Any]:
    """Seconds per 482x512 image on ``device``: the best of ``repeats`` runs after a warm-up (the
    minimum is the least disturbed by other load on a shared machine)."""
    rgb = np.random.default_rng(0).random((482, 512, 3), dtype=np.float32)
    predict(model, rgb, device)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        predict(model, rgb, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return {"seconds_per_482x512": round(best, 5), "device": name, "torch": torch.__version__}


def _model_config(name: str, config: dict[str, Any], bands: int) -> dict[str, Any]:
    spec = model_spec(name)
    params = inspect.signature(spec.factory).parameters
    unknown = [k for k in config if k not in params]
    if unknown:
        raise HsError(f"model '{name}' has no option {', '.join(unknown)} (options: {', '.join(params)})")
    full = {k: p.default for k, p in params.items()
            if p.default is not inspect.Parameter.empty and isinstance(p.default, (int, float, str, bool))}
    full.update(spec.defaults)
    if "out_bands" in config:
        raise HsError("--config out_bands: the band count is the training data's (--data)")
    for key, value in config.items():  # a value of the default's kind (an int where an int is due)
        default = full.get(key)
        kind = type(default)
        if default is not None and type(value) is not kind and not (kind is float and type(value) is int):
            raise HsError(f"--config {key}={value!r}: model '{name}' takes {kind.__name__} values "
                          f"there (default {default!r})")
        # counts and sizes: every numeric option of the registered models is >= 1 (none takes 0);
        # one whose default is 0 or below would mean something else there, and is left alone
        if kind in (int, float) and default > 0 and not (math.isfinite(value) and value > 0):
            raise HsError(f"--config {key}={value}: must be a positive {'integer' if kind is int else 'number'} "
                          f"for model '{name}'")
    full.update(config)
    if "out_bands" in params:
        full["out_bands"] = bands
    return full


# ---------------------------------------------------------------- training


def _check_read(cfg: TrainConfig, spec) -> None:
    """Before any work: refuse an option set away from its default that this run would not read."""
    unread = []
    if spec.kind == "pixel":
        unread += [(name, f"pixel model '{cfg.model}' (it is fitted in closed form, not trained)") for name in DEEP_ONLY]
        if cfg.fp16:
            raise HsError(f"--fp16 does nothing for pixel model '{cfg.model}' (its few values are stored in float32); "
                          "drop it")
    else:
        from .engine import least_side

        m, least = max(1, spec.multiple), least_side(spec.multiple)
        if cfg.crop % m or cfg.crop < least:
            raise HsError(f"--crop {cfg.crop}: model '{cfg.model}' takes sides that are multiples of {m}, at least "
                          f"{least} (e.g. --crop {max(least, -(-cfg.crop // m) * m)})")
        if not cfg.base:
            unread.append(("pixels", f"deep model '{cfg.model}' without --base (it trains on crops)"))
            if cfg.data != "synth":
                unread.append(("scenes", f"deep model '{cfg.model}' on a cube folder (its crops come from every cube)"))
        if cfg.loss in ("l1", "mse") and not cfg.mrae_mix:
            unread.append(("loss_floor", f"--loss {cfg.loss} (it divides by nothing)"))
    if cfg.data != "synth":
        unread.append(("scene_size", "a cube folder as --data (its cubes keep their size)"))
    if not cfg.val:
        if cfg.keep == "best" and spec.kind == "deep":  # a pixel model hears that --keep does nothing
            raise HsError("--keep best needs validation data (not --val none)")
        unread += [(name, "--val none") for name in ("val_scenes", "val_size")]
    elif cfg.val != "synth":
        unread.append(("val_size", "a cube folder as --val (its cubes keep their size)"))
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for name, why in unread:
        if getattr(cfg, name) != defaults[name]:
            raise HsError(f"--{name.replace('_', '-')} does nothing for {why}; drop it")


def world() -> tuple[int, int]:
    """(rank, world size) of this process: torchrun's ``RANK`` and ``WORLD_SIZE``, else (0, 1)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def train(cfg: TrainConfig, console: Console | None = None) -> dict[str, Any]:
    """Train (or fit) ``cfg.model`` and write ``cfg.out``; returns the metadata written.

    Launched by ``torchrun --nproc-per-node N`` (``WORLD_SIZE`` > 1), a deep model trains with
    DistributedDataParallel (``gloo`` on CPU, ``nccl`` on CUDA, each process on the GPU of its
    ``LOCAL_RANK``): every process draws the same stream of crops and trains on its own
    ``--batch / N`` of each step's, so a run reaches the weights of a one-process run with the same
    ``--batch`` and seed, to floating-point rounding; process 0 alone prints, validates and writes."""
    rank, size = world()
    if size <= 1:
        return _train(cfg, console or Console(stderr=True))
    import torch.distributed as dist

    if model_spec(cfg.model).kind == "pixel":
        raise HsError(f"{cfg.model} is fitted in closed form in one process: run it without torchrun / --nproc")
    if cfg.batch % size:
        raise HsError(f"--batch {cfg.batch} must be a multiple of the {size} processes (each takes an equal share)")
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        quiet = Console(stderr=True, quiet=True)
        return _train(cfg, (console or Console(stderr=True)) if rank == 0 else quiet, device)
    finally:
        dist.destroy_process_group()


def _train(cfg: TrainConfig, console: Console, device: torch.device | None = None) -> dict[str, Any]:
    rank, size = world()
    spec = model_spec(cfg.model)
    _check_read(cfg, spec)
    out = Path(cfg.out)
    # before any work: never an input (--init, --resume), and a folder that takes files
    if out.suffix.lower() != ".safetensors":
        raise HsError("weights are written as safetensors: give a path ending in .safetensors", out)
    check_writable(out, cfg.overwrite, inputs=tuple(Path(p) for p in (cfg.init, cfg.resume) if p))
    ckpt = checkpoint_path(out)  # the run's own checkpoint: a resumed run carries it on
    if ckpt.exists() and not cfg.overwrite and not (cfg.resume and ckpt.resolve() == Path(cfg.resume).resolve()):
        raise HsError("a checkpoint of another run is here: continue it with --resume, or --overwrite", ckpt)
    check_output_folder(out.parent)
    if cfg.loss not in LOSSES:
        raise HsError(f"unknown loss '{cfg.loss}' (use {', '.join(LOSSES)})")
    if not cfg.loss_floor > 0:
        raise HsError(f"--loss-floor must be > 0, got {cfg.loss_floor:g}")
    if cfg.rel_floor and cfg.loss != "mrae" or not 0 <= cfg.rel_floor <= 1:
        raise HsError(f"--rel-floor must be in [0, 1] and needs --loss mrae, got {cfg.rel_floor:g} with {cfg.loss}")
    if cfg.mrae_mix < 0 or cfg.mrae_mix and cfg.loss == "mrae":
        raise HsError(f"--mrae-mix must be >= 0 and needs a loss other than mrae, got {cfg.mrae_mix:g} with {cfg.loss}")
    check_positive(cfg.css_loss, "--css-loss", zero=True)
    if cfg.int8 and (spec.kind != "deep" or cfg.fp16 is False):
        raise HsError("--int8 stores a deep model's weight matrices (the rest in fp16): not with a pixel model or --fp32")
    if spec.kind == "deep" and cfg.epochs == 0 and not cfg.init:
        raise HsError("--epochs 0 trains nothing: it writes the --init weights (grown to --model's size); give --init")
    check_positive(cfg.lr, "--lr", zero=True)  # 0 keeps the starting weights (--init)
    if not 0 <= cfg.ema < 1:
        raise HsError(f"--ema must be in [0, 1), not {cfg.ema:g}")
    if cfg.keep not in KEEP:
        raise HsError(f"unknown --keep '{cfg.keep}' (use {', '.join(KEEP)})")
    if cfg.val_rgb and not (cfg.rgb and cfg.val not in (None, "synth")):
        raise HsError("--val-rgb gives the images of a --val cube folder when training with --rgb")
    if cfg.rgb and cfg.val == "synth":
        raise HsError("--rgb trains on your camera's images; synthetic validation would be imaged by the track's "
                      "camera instead: give --val DIR (its images in --val-rgb or the --rgb folder) or --val none")
    from hstool.camera import track as _track

    if cfg.brightness_aug and _track(cfg.track).target_mean is not None:
        raise HsError(f"--brightness-aug is undone by the {cfg.track} track's automatic exposure: the images would "
                      "not change while the cubes do; drop it")
    wavelengths = ARAD_WAVELENGTHS.copy()
    if cfg.data != "synth":
        used = training_files(cfg)[0]  # with --rgb, only the cubes that have an image
        first_path = used[0]
        wavelengths = check_training_cubes(used, cfg.crop if spec.kind == "deep" else None)
        from hstool.camera import track

        try:  # the data's grid must cover the track's camera (else even the validation scenes fail)
            track(cfg.track).css.on(wavelengths)
        except HsError as exc:
            raise HsError(exc.message, first_path) from None
    device = device or resolve_device(cfg.device)
    if device.type == "cpu":
        reuse_freed_memory()  # a fresh activation buffer per layer and step otherwise faults in anew
    config = _model_config(cfg.model, cfg.config, wavelengths.size)
    if cfg.base:
        if model_spec(cfg.base).kind != "pixel":
            raise HsError(f"--base must be a pixel-wise model (linear, rootpoly, ...), not '{cfg.base}'")
        config["base"] = cfg.base
    torch.manual_seed(cfg.seed)  # the network's initial weights
    model = _build(cfg.model, config)
    source = CubeSource(cfg, wavelengths)
    if source.unpaired:
        names = ", ".join(f.name for f in source.unpaired[:5]) + (", ..." if len(source.unpaired) > 5 else "")
        console.print(f"{len(source.unpaired)} cube(s) have no RGB image in {cfg.rgb} and are left out: {names}",
                      markup=False, style="yellow")
    data_desc, data_hash = source.describe()
    if cfg.val not in (None, "synth"):
        check_held_out(cfg, source.files, validation_files(cfg)[0])
    val_pairs = validation_set(cfg, wavelengths)
    init = _read_init(cfg, config, wavelengths, model)
    t0, earlier = time.perf_counter(), 0.0
    if spec.kind == "pixel":
        model, rgb_mean, history = _fit_pixel(cfg, cfg.model, source, config, console)
        fp16 = bool(cfg.fp16)
    else:
        model, rgb_mean, history, earlier = _train_deep(cfg, spec, model, source, config, val_pairs, device,
                                                        console, init[0] if init else None)
        if rgb_mean is None and init:  # --epochs 0: the starting weights' training RGB
            rgb_mean = init[1].get("rgb_mean")
        fp16 = True if cfg.fp16 is None else cfg.fp16
    model.spec = spec
    round_to_stored(model, fp16, cfg.int8)
    if rank != 0:  # process 0 validates and writes
        return {}
    val = validate(model, val_pairs, device)
    meta = {
        "architecture": cfg.model,
        "config": config,
        "wavelengths": [float(w) for w in wavelengths],
        "input": INPUT_NORM,
        "track": cfg.track,
        # images given (--rgb): their camera is the user's, whatever the track's CSS is
        "css": f"the camera of the images in {cfg.rgb}" if cfg.rgb else source.pipeline.css.name,
        "train_command": cfg.command(),
        "data": data_desc,
        "data_short": "synth" if cfg.data == "synth" else Path(cfg.data).name,
        "data_hash": data_hash,
        "val_data": (f"synthetic test split, seeds 0-{(cfg.val_scenes or VAL_SCENES) - 1}, {cfg.val_size}x{cfg.val_size}"
                     if cfg.val == "synth" else
                     f"{len(val_pairs)} cubes from {cfg.val}" + (f" with their images from {cfg.val_rgb or cfg.rgb}"
                                                                 if cfg.rgb else "") if cfg.val else None),
        "val_mrae": val,
        "rgb_mean": rgb_mean,
        "history": history,
        "train_seconds": round(earlier + time.perf_counter() - t0, 1),  # a resumed run's earlier sessions too
        "dtype": ("int8 weights (per-channel scales), fp16 rest" if cfg.int8 else "fp16" if fp16 else "fp32"),
        "world_size": size,  # processes that trained it (torchrun --nproc-per-node)
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if init:
        meta["init"] = init[1]
        if spec.kind == "deep" and cfg.epochs == 0:  # no step taken: what trained the weights is the --init's
            start_meta = read_metadata(cfg.init)
            meta.update({k: start_meta[k] for k in ("data", "data_short", "data_hash") if k in start_meta})
    if history:
        meta["kept_epoch"] = (min(history, key=lambda h: h["val_mrae"])["epoch"] if cfg.keep == "best"
                              else len(history))
    if cfg.speed and (spec.kind == "pixel" or device.type == "cuda"):
        meta["speed"] = measure_speed(model, device)
    save_weights(model, out, meta, fp16=fp16, overwrite=cfg.overwrite, int8=cfg.int8)
    if not cfg.keep_checkpoint:  # the weights hold the finished run
        ckpt.unlink(missing_ok=True)
    return meta


def check_training_cubes(files: list[Path], crop: int | None = None) -> np.ndarray:
    """Read every training cube once before any step and return their band grid; a cube that
    cannot be used (unreadable, NaN or inf, negative values beyond the noise that simulation clips,
    a band grid other than the others', smaller than a deep model's ``crop``) refuses the run, all
    such files named at once, rather than stopping it at whichever step first draws a crop from one."""
    from hstool.camera.pipeline import NOISE_NEGATIVE

    grids: dict[tuple[float, ...], list[Path]] = {}
    actual: dict[tuple[float, ...], np.ndarray] = {}
    problems: dict[Path, list[str]] = {}  # each file's reasons
    for f in files:
        try:
            cube = read_cube(f, dtype=None)
        except HsError as exc:
            problems[f] = [exc.message]
            continue
        reasons = problems.setdefault(f, [])
        if crop is not None and min(cube.height, cube.width) < crop:
            reasons.append(f"cube is {cube.height}x{cube.width}, smaller than --crop {crop}")
        data = np.asarray(cube.data)
        lo, hi = float(np.min(data)), float(np.max(data))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            reasons.append("holds NaN or infinite values")
        elif lo < -NOISE_NEGATIVE * hi:
            reasons.append(f"negative values down to {lo:.4g}, more than {100 * NOISE_NEGATIVE:g}% of its maximum "
                           f"{hi:.4g} (what simulation clips as noise): not light")
        key = tuple(np.round(cube.wavelengths, 3).tolist())
        grids.setdefault(key, []).append(f)
        actual.setdefault(key, np.asarray(cube.wavelengths, dtype=np.float64))
    if grids:
        common = max(grids, key=lambda g: len(grids[g]))
        for grid, members in grids.items():
            if grid != common:
                for f in members:
                    problems[f].append(f"{len(grid)} bands {grid[0]:g}-{grid[-1]:g} nm; the other cubes have "
                                       f"{len(common)} ({common[0]:g}-{common[-1]:g} nm)")
    bad = [f"{f}: {', '.join(reasons)}" for f, reasons in problems.items() if reasons]
    if bad:
        shown = "; ".join(bad[:TRAINING_PROBLEMS_SHOWN])
        more = f"; and {len(bad) - TRAINING_PROBLEMS_SHOWN} more" if len(bad) > TRAINING_PROBLEMS_SHOWN else ""
        raise HsError(f"{len(bad)} of {len(files)} training cubes cannot be used (fix or move them): {shown}{more}")
    return actual[common]


#: how many unusable training cubes :func:`check_training_cubes` names
TRAINING_PROBLEMS_SHOWN = 5


def _same_grid(a, b) -> bool:
    """Whether two band grids (nm) have the same length and agree to ``np.allclose``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b))


def _read_init(cfg, config, wavelengths, model=None) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """``(state_dict, provenance)`` of ``cfg.init``, checked against the run's model, config and bands.
    Weights of the smaller configuration ``NAME_s`` start model ``NAME`` grown function-preservingly
    (:func:`hstool.recon.grow.grow_state`): the full network begins with the smaller one's outputs."""
    if not cfg.init:
        return None
    arch = read_metadata(cfg.init).get("architecture")
    grown = bool(arch) and grown_from(cfg.model, arch)
    start = create_model(arch if grown else cfg.model, cfg.init)  # checks the architecture and that the tensors fit
    meta = start.meta
    if grown:
        if start.meta.get("config", {}).get("base") != config.get("base"):
            raise HsError("weights were trained with another --base than this run's", cfg.init)
    # a file written before an option existed lacks it: it was trained with that option's default
    elif {**_model_config(cfg.model, {}, wavelengths.size), **(meta.get("config") or {})} != config:
        raise HsError(f"weights were trained with config {meta.get('config')}, not {config} "
                      "(give the same --config and --base)", cfg.init)
    if not _same_grid(meta.get("wavelengths", []), wavelengths):
        raise HsError("weights' band grid differs from the training data's", cfg.init)
    provenance = {"file": Path(cfg.init).name, "sha256": file_sha256(cfg.init),
                  "architecture": arch, "grown": grown or None, "train_command": meta.get("train_command"),
                  "val_mrae": meta.get("val_mrae"), "train_seconds": meta.get("train_seconds"),
                  "rgb_mean": meta.get("rgb_mean"), "init": meta.get("init")}
    state = grow_state(start, model if model is not None else _build(cfg.model, config)) if grown else start.state_dict()
    return state, {k: v for k, v in provenance.items() if v is not None}


def _fit_pixel(cfg, name: str, source: CubeSource, config, console):
    """Fit pixel-wise model ``name`` in closed form on ``cfg.pixels`` pixels drawn with ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    with console.status(f"sampling {cfg.pixels} pixels"):
        rgb, spectra = source.pixels(rng, cfg.pixels)
    if len(rgb) < cfg.pixels:  # the cubes hold fewer: all of them, and said
        console.print(f"--pixels {cfg.pixels}: the cubes sampled hold {len(rgb)}; fitting on those", style="yellow",
                      markup=False)
    cls = type(build_model(name, **config))
    kwargs = {k: v for k, v in config.items() if k != "out_bands"}
    if "seed" in inspect.signature(cls.fit).parameters:
        kwargs["seed"] = cfg.seed
    with console.status(f"fitting {name} on {len(rgb)} pixels"):
        try:
            model = cls.fit(rgb, spectra, **kwargs)
        except ValueError as exc:  # a configuration the data cannot fit (more atoms than pixels)
            raise HsError(f"model '{name}' cannot be fitted with {_config_text(config)}: {exc}") from None
    return model, float(rgb.mean()), []


def _config_text(config: dict[str, Any]) -> str:
    """``config degree=5`` (out_bands, the data's, left out)."""
    items = [f"{k}={v}" for k, v in sorted(config.items()) if k != "out_bands"]
    return f"config {' '.join(items)}" if items else "its default config"


def _build(name: str, config: dict[str, Any]) -> torch.nn.Module:
    """A fresh model ``name`` with a resolved ``config``, run once on a small zero batch: a combination
    its constructor or its layers refuse (``rootpoly`` degree 5, ``hrnet`` an odd start width) is an
    :class:`HsError` before any work, not a traceback mid-training."""
    try:
        model = build_model(name, **config)
        side = math.lcm(model_spec(name).multiple, 16)
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, side, side))
    except BUILD_ERRORS as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise HsError(f"model '{name}' cannot be built with {_config_text(config)}: {reason}") from None
    return model.train()


def _load_refusal(exc: Exception, not_ckpt: str) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words: PyTorch's own message
    spans paragraphs and advises ``weights_only=False``, the wrong advice for a file not trusted."""
    import pickle
    import re

    named = re.search(r"GLOBAL (\S+)", str(exc)) if isinstance(exc, pickle.UnpicklingError) else None
    if named:
        return f"not a training checkpoint: it holds code or objects beyond tensors ({named[1][:60]}), which " \
               "hstool never loads"
    said = [p for p in (" ".join(p.split()) for p in str(exc).split("\n\n"))
            if p and "weights_only" not in p and not p.startswith(("Weights only load failed", "Check the doc"))]
    return f"{not_ckpt} ({brief(said[0]) if said else type(exc).__name__})"


def checkpoint_path(out: Path) -> Path:
    """Where ``train`` keeps its per-epoch checkpoint: ``W.safetensors`` -> ``W.ckpt``."""
    return Path(out).with_suffix(".ckpt")


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _train_deep(cfg, spec, model, source: CubeSource, config, val_pairs, device, console, init_state=None):
    """Train a deep model; returns (model, mean training RGB, history, seconds spent by the earlier
    sessions of a resumed run)."""
    session_start, earlier = time.perf_counter(), 0.0
    if init_state is not None:  # the starting weights hold the baseline too (a resumed run restores both below)
        model.load_state_dict(init_state, strict=True)
    elif cfg.base:  # fit the baseline the network corrects (a resumed run restores it below)
        fitted, _, _ = _fit_pixel(cfg, cfg.base, source, _model_config(cfg.base, {}, config["out_bands"]), console)
        model.base.load_state_dict(fitted.state_dict())
    model = model.to(device)
    model.spec = spec
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    total = max(1, cfg.epochs * cfg.steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    criterion = with_css_loss(loss_fn(cfg.loss, cfg.loss_floor, cfg.rel_floor, cfg.mrae_mix), source.pipeline.matrix(source.wavelengths), cfg.css_loss)
    # --ema: validate, keep and write an exponential moving average of the weights (BatchNorm statistics too)
    averaged = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        if cfg.ema else None)
    judged = averaged.module if averaged is not None else model
    rank, size = world()
    net = model
    if size > 1:  # gradients averaged over the processes: each its equal share of every step's crops
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    start, history, rgb_sum, rgb_n, best = 0, [], 0.0, 0, None
    ckpt_path = checkpoint_path(cfg.out)
    if cfg.resume:
        not_ckpt = "not a training checkpoint (the .ckpt train writes beside OUT); a weights file starts a run with --init"
        if Path(cfg.resume).suffix.lower() == ".safetensors":
            raise HsError(not_ckpt, cfg.resume)
        try:
            ckpt = torch.load(cfg.resume, map_location=device, weights_only=True)  # no pickled code runs
        except Exception as exc:
            raise HsError(_load_refusal(exc, not_ckpt), cfg.resume) from exc
        if not isinstance(ckpt, dict) or "model_name" not in ckpt:
            raise HsError(not_ckpt, cfg.resume)
        if ckpt.get("model_name") != cfg.model or ckpt.get("config") != config:
            raise HsError(f"checkpoint is for {ckpt.get('model_name')} {ckpt.get('config')}, not "
                          f"{cfg.model} {config}", cfg.resume)
        if "command" in ckpt:  # the optimiser and its schedule come back: so must every option
            was, now = _same_paths(_options(ckpt["command"])), _same_paths(_options(cfg.command()))
            changed = sorted(k for k in was.keys() | now.keys() if k != "--out" and was.get(k) != now.get(k))
            if changed:
                then = ", ".join(f"{k} {' '.join(was[k])}".strip() if k in was else f"no {k}" for k in changed)
                raise HsError(f"--resume continues the checkpoint's run, which used {then}: give the same options",
                              cfg.resume)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if averaged is not None:
            if "ema" not in ckpt:
                raise HsError("checkpoint was written without --ema", cfg.resume)
            averaged.load_state_dict(ckpt["ema"])
        start, history = ckpt["epoch"] + 1, ckpt["history"]
        earlier = float(ckpt.get("seconds", 0.0))
        rgb_sum, rgb_n, best = ckpt["rgb_sum"], ckpt["rgb_n"], ckpt.get("best")
    if init_state is not None and not cfg.resume and cfg.keep == "best" and cfg.epochs > 0:
        # --keep best never writes worse than the weights it started from (process 0 validates)
        val = validate(judged, val_pairs, device) if rank == 0 else None
        if val is not None:
            best = {"epoch": 0, "val_mrae": val, "model": {k: v.detach().clone() for k, v in judged.state_dict().items()}}
            history.append({"epoch": 0, "loss": None, "val_mrae": val})
            console.print(f"starting weights (--init): val MRAE {val:.4f}")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[note]}"),
                        TimeElapsedColumn(), console=console)
    with progress:
        task = progress.add_task("train", total=(cfg.epochs - start) * cfg.steps_per_epoch, loss="-", note="")
        for epoch in range(start, cfg.epochs):
            rng = np.random.default_rng([cfg.seed, epoch])
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            source.start_epoch(rng)
            model.train()
            running = None
            for _ in range(cfg.steps_per_epoch):
                pairs = [source.crop(rng, cfg.crop) for _ in range(cfg.batch)]
                source.refresh(rng)
                rgb = torch.from_numpy(np.stack([p[0] for p in pairs]).transpose(0, 3, 1, 2))
                gt = torch.from_numpy(np.stack([p[1] for p in pairs]).transpose(0, 3, 1, 2))
                rgb_sum += float(rgb.sum())
                rgb_n += rgb.numel()
                share = slice(rank * cfg.batch // size, (rank + 1) * cfg.batch // size)  # all of it in one process
                loss = criterion(net(rgb[share].to(device)), gt[share].to(device))
                seen = loss.detach().clone()
                if size > 1:  # every process stops together on a bad loss, and shows the step's mean
                    torch.distributed.all_reduce(seen)
                    seen /= size
                if not torch.isfinite(seen):
                    raise HsError(f"loss became {float(seen)} in epoch {epoch + 1}; lower --lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                value = seen.item()
                running = value if running is None else 0.95 * running + 0.05 * value
                progress.update(task, advance=1, loss=f"{running:.4f}",
                                note=f"epoch {epoch + 1}/{cfg.epochs} lr {sched.get_last_lr()[0]:.2e}")
            val = validate(judged, val_pairs, device) if rank == 0 else None
            history.append({"epoch": epoch + 1, "loss": running, "val_mrae": val})
            if cfg.keep == "best" and val is not None and (best is None or val < best["val_mrae"]):
                best = {"epoch": epoch + 1, "val_mrae": val,
                        "model": {k: v.detach().clone() for k, v in judged.state_dict().items()}}
            progress.console.print(f"epoch {epoch + 1}/{cfg.epochs}: loss {running:.4f}"
                                   + (f", val MRAE {val:.4f}" if val is not None else ""))
            if rank != 0:
                continue
            _save_checkpoint(ckpt_path, {
                "model_name": cfg.model, "config": config, "epoch": epoch, "history": history,
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rgb_sum": rgb_sum, "rgb_n": rgb_n, "command": cfg.command(), "best": best,
                "seconds": earlier + time.perf_counter() - session_start,
                **({"ema": averaged.state_dict()} if averaged is not None else {}),
            })
    if best is not None:
        model.load_state_dict(best["model"])
        kept = f"epoch {best['epoch']}" if best["epoch"] else "the starting weights (--init)"
        console.print(f"keeping {kept} (lowest validation MRAE, {best['val_mrae']:.4f})")
    elif averaged is not None:
        model.load_state_dict(averaged.module.state_dict())
    model.eval()
    return model, (rgb_sum / rgb_n if rgb_n else None), history, earlier
