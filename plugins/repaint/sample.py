"""Inference: RePaint's resampling loop on the prior, and the hole denoising loss score."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.diffusion import count_steps, diffusers_points, jump_points, repaint
from zoo.diffusion.classifier import NoisyClassifier, classifier_gradient, load_classifier
from zoo.diffusion.losses import hole_denoising_loss
from zoo.errors import ZooError
from zoo.inpaint import image_names
from zoo.spec import SampleOutput
from zoo_plugins.repaint.config import SAMPLING_MODES, RepaintConfig
from zoo_plugins.repaint.model import RepaintPrior, make_chain


#: The official ``schedule_jump_params`` beyond t_T / jump_length / jump_n_sample, with
#: their defaults (no extra resampling); they take effect with ``sampling=custom``.
EXTRA_SCHEDULE = {"jump2_length": 1, "jump2_n_sample": 1, "jump3_length": 1, "jump3_n_sample": 1, "start_resampling": None, "n_sample": 1}


def sampling_settings(cfg: RepaintConfig) -> RepaintConfig:
    """Apply the named sampling mode (``published`` / ``fast``) over the custom fields."""
    if cfg.sampling == "custom":
        return cfg
    changed = [k for k, v in EXTRA_SCHEDULE.items() if getattr(cfg, k) != v]
    if changed:
        raise ZooError(f"{', '.join(changed)}: only with sampling=custom (now sampling={cfg.sampling}, whose schedule has none); add --set sampling=custom")
    return dataclasses.replace(cfg, **SAMPLING_MODES[cfg.sampling])


def schedule_points(cfg: RepaintConfig) -> list[int]:
    cfg = sampling_settings(cfg)
    extra = {k: getattr(cfg, k) for k in EXTRA_SCHEDULE}
    if cfg.schedule_alignment == "diffusers":
        if any(v != EXTRA_SCHEDULE[k] for k, v in extra.items()):
            raise ZooError("schedule_alignment=diffusers has only jump_length / jump_n_sample (diffusers' RePaintScheduler); use schedule_alignment=repaint for jump2, jump3, start_resampling, n_sample")
        return diffusers_points(cfg.t_T, cfg.jump_length, cfg.jump_n_sample)
    return jump_points(cfg.t_T, cfg.jump_length, cfg.jump_n_sample, **extra)


def expected_nfe(cfg: RepaintConfig) -> int:
    """Network calls per image of the config's schedule."""
    return count_steps(schedule_points(cfg)).down


_CLASSIFIERS: dict[tuple, NoisyClassifier] = {}  # one load per file and process (the runner calls per batch)


def classifier_for(cfg: RepaintConfig) -> NoisyClassifier | None:
    """The ``classifier`` file of the config (read once), checked against the prior."""
    if not cfg.classifier:
        return None
    path = Path(cfg.classifier).expanduser()
    st = path.stat() if path.is_file() else None
    key = (str(path.resolve()), st.st_mtime_ns if st else None, cfg.classifier_depth)
    if key not in _CLASSIFIERS:
        _CLASSIFIERS.clear()
        _CLASSIFIERS[key] = load_classifier(path, cfg.classifier_depth)
    clf = _CLASSIFIERS[key]
    size = clf.cfg.image_size
    if size is not None and size != cfg.resolution:
        raise ZooError(f"classifier {path.name} was trained at {size}x{size} (read from its attention pool) but the prior at {cfg.resolution}x{cfg.resolution}; use a classifier of the prior's resolution")
    if cfg.num_classes is not None and clf.cfg.classes != cfg.num_classes:
        raise ZooError(f"classifier {path.name} has {clf.cfg.classes} classes but the prior {cfg.num_classes}; use the classifier published with the prior")
    return clf


def class_count(cfg: RepaintConfig, clf: NoisyClassifier | None) -> int | None:
    """Classes a ``class`` may name: the prior's (label_emb) or else the classifier's."""
    return cfg.num_classes if cfg.num_classes is not None else (clf.cfg.classes if clf is not None else None)


def _check_class(label: int, n: int | None, where: str = "") -> int:
    if n is None:
        raise ZooError(f"class={label} needs a class-conditional prior (num_classes) or a classifier (--set classifier=PATH); this prior is unconditional")
    if not 0 <= label < n:
        raise ZooError(f"class {label}{where} is out of range: valid classes are 0 ... {n - 1} ({n} classes)")
    return label


def read_class_file(path: Path, n: int | None) -> dict[str, int]:
    """A class list file: one ``NAME CLASS`` per line (NAME: the image's path under
    ``--images``, with or without its suffix; ``#`` comments and blank lines skipped)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ZooError(f"class list {path} cannot be read ({exc.__class__.__name__})") from None
    classes: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ZooError(f"class list {path.name} line {no}: expected 'NAME CLASS' (an image name and a class index), got {line!r}")
        name = str(Path(parts[0]).with_suffix("")) if Path(parts[0]).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp") else parts[0]
        classes[name] = _check_class(int(parts[1]), n, f" ({path.name} line {no})")
    return classes


def parse_class(cfg: RepaintConfig, n: int | None) -> int | dict[str, int] | None:
    """``class=N`` (checked against the ``n`` classes) or ``class=FILE`` (name -> class);
    None when no class is given."""
    if cfg.class_label is None:
        return None
    text = str(cfg.class_label).strip()
    if text.lstrip("-").isdigit():
        return _check_class(int(text), n)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ZooError(f"class {text!r} is neither a class index (an integer 0 ... {n - 1 if n else 'N-1'}) nor a class list file")
    return read_class_file(path, n)


def batch_classes(cfg: RepaintConfig, n: int | None, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor | None:
    """(B,) class indices: ``class=N`` for every image, each image's line of a class list
    file, or (no class given, a class-conditional prior or a classifier) a random class per
    image from ``generator``, as the official ``test.py`` draws them; None for an
    unconditional prior without a classifier."""
    label = parse_class(cfg, n)
    if n is None:
        return None
    if isinstance(label, dict):
        names = image_names()
        if names is None or len(names) != batch:
            raise ZooError("a class list file needs the images' names: use it with zoo sample (or give --set class=N)")
        missing = [name for name in names if name not in label]
        if missing:
            raise ZooError(f"class list {cfg.class_label} has no line for image {missing[0]!r} ({len(missing)} of this batch missing)")
        return torch.tensor([label[name] for name in names], dtype=torch.long, device=device)
    if label is not None:
        return torch.full((batch,), label, dtype=torch.long, device=device)
    return torch.randint(0, n, (batch,), generator=generator, device=generator.device).to(device)


@torch.no_grad()
def sample(model: RepaintPrior, cfg: RepaintConfig, images: torch.Tensor, holes: torch.Tensor, generator: torch.Generator, progress: bool = True) -> SampleOutput:
    """images (B, 3, H, W) in [-1, 1], holes (B, 1, H, W) 1 = hole -> composited result.

    Sizes that the UNet cannot halve enough times are reflect-padded (padding counts as
    known) and cropped back.
    """
    s = sampling_settings(cfg)
    h, w = images.shape[-2:]
    m = model.multiple
    ph, pw = (-h) % m, (-w) % m
    x, hole = images, holes
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = F.pad(images, (0, pw, 0, ph), mode=mode)
        hole = F.pad(holes, (0, pw, 0, ph))
    chain = make_chain(cfg).respace(s.t_T)
    points = schedule_points(cfg)
    clf = classifier_for(cfg)
    if clf is not None and clf.cfg.image_size is not None and x.shape[-2:] != (clf.cfg.image_size,) * 2:
        raise ZooError(f"the classifier's attention pool takes {clf.cfg.image_size}x{clf.cfg.image_size} images; these are {w}x{h}" + (f" (padded to {x.shape[-1]}x{x.shape[-2]})" if ph or pw else ""))
    classes = batch_classes(cfg, class_count(cfg, clf), x.shape[0], generator, x.device)
    model_fn = model if cfg.num_classes is None else (lambda x_t, t: model(x_t, t, classes))
    cond_fn = None
    if clf is not None:
        clf.to(x.device)
        cond_fn = lambda x_t, t: classifier_gradient(clf, x_t, t, classes, cfg.classifier_scale)  # noqa: E731
    result = repaint(model_fn, x, hole, chain, points, generator, s.sampler, s.eta, s.clip_denoised, progress=progress, desc="repaint", known_noise=s.known_noise, cond_fn=cond_fn)
    out = result.images[..., :h, :w]
    out = images * (1 - holes) + out * holes
    info = {"nfe": result.nfe, "undo_steps": result.undo_steps, "schedule": f"t_T={s.t_T} j={s.jump_length} r={s.jump_n_sample} {s.sampler}" + (f" eta={s.eta}" if s.sampler == "ddim" else "") + f" known_noise={s.known_noise}" + "".join(f" {k}={getattr(s, k)}" for k, v in EXTRA_SCHEDULE.items() if getattr(s, k) != v)}
    if classes is not None:
        info["classes"] = ",".join(str(int(c)) for c in classes) + (f" classifier_scale={cfg.classifier_scale}" if clf is not None else "")
    return SampleOutput(out, info)


@torch.no_grad()
def score(model: RepaintPrior, cfg: RepaintConfig, images: torch.Tensor, holes: torch.Tensor) -> dict[str, float]:
    """The prior's eps-MSE on the hole of the ground truth, averaged over ``score_levels``
    timesteps evenly spread over the training chain (fixed noise)."""
    chain = make_chain(cfg)
    n = max(1, cfg.score_levels)
    levels = sorted({round(i * (len(chain) - 1) / max(n - 1, 1)) for i in range(n)})
    m = model.multiple
    h, w = images.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        images = F.pad(images, (0, pw, 0, ph), mode="replicate")
        holes = F.pad(holes, (0, pw, 0, ph))
    if cfg.num_classes is not None:  # a class-conditional prior scores under the given class
        label = parse_class(cfg, cfg.num_classes)
        if not isinstance(label, int):
            raise ZooError(f"this prior is class-conditional ({cfg.num_classes} classes); scoring needs --set class=N")
        y = torch.full((images.shape[0],), label, dtype=torch.long, device=images.device)
        prior = model
        model = lambda x_t, t: prior(x_t, t, y)  # noqa: E731
    loss = hole_denoising_loss(model, chain, images, holes, levels)
    return {"hole_denoise_mse": float(loss.mean())}
