"""The built-in mask kinds as data: names and descriptions.

Declaring them imports neither torch nor numpy, because the core plugin returns this list
from ``zoo_register_mask_generators`` on every ``zoo list`` and ``zoo plugins``: each
``generate`` is a thin wrapper that imports its drawing code (:mod:`zoo.masks.simple`,
:mod:`zoo.masks.lama`, :mod:`zoo.masks.mat`) on its first call.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from zoo.spec import MaskGeneratorSpec


def _simple(name: str, *args: Any, **kwargs: Any) -> Any:
    from zoo.masks import simple

    return getattr(simple, name)(*args, **kwargs)


def _protocol_key(name: str | None, family: str, height: int, width: int) -> str:
    """``name``, or the family's 512 protocol when the shorter side is >= 512, else its 256 one."""
    return name or f"{family}-{512 if min(height, width) >= 512 else 256}"


def _lama(name: str | None, height: int, width: int, rng: Any, family: str = "") -> Any:
    from zoo.masks import lama
    from zoo.masks.canvas import on_canvas

    proto = lama.PROTOCOLS[_protocol_key(name, family, height, width)]
    return on_canvas(lambda r: lama.lama_mask(proto.size, proto.size, proto, r), height, width, rng)


def _free_form(name: str | None, height: int, width: int, rng: Any, family: str = "") -> Any:
    from zoo.masks import mat
    from zoo.masks.canvas import on_canvas

    proto = mat.PROTOCOLS[_protocol_key(name, family, height, width)]
    return on_canvas(lambda r: mat.free_form_mask(proto, r), height, width, rng)


def _lama_kinds() -> list[MaskGeneratorSpec]:
    specs = []
    blurbs = {
        "thin": "LaMa thin strokes (random_thin_{size}.yaml), <=50 % coverage",
        "medium": "LaMa medium strokes or 30 % boxes (random_medium_{size}.yaml), <=50 % coverage",
        "thick": "LaMa thick strokes or 30 % boxes (random_thick_{size}.yaml), <=50 % coverage",
    }
    for width_name, blurb in blurbs.items():
        specs.append(MaskGeneratorSpec(f"lama-{width_name}", blurb.format(size="256|512") + "; 512 protocol when the image is >=512 px", partial(_lama, None, family=width_name)))
        for size in (256, 512):
            specs.append(MaskGeneratorSpec(f"lama-{width_name}-{size}", blurb.format(size=size), partial(_lama, f"{width_name}-{size}")))
    specs.append(
        MaskGeneratorSpec(
            "lama-train",
            "LaMa's training mixture (abl-04-256-mh-dist.yaml): 1/2 thick strokes, 1/2 boxes, no cap",
            partial(_lama, "train"),
        )
    )
    return specs


def _mat_kinds() -> list[MaskGeneratorSpec]:
    specs = [
        MaskGeneratorSpec("mat-large", "MAT/CoModGAN-style free-form large masks (mask_generator_{256,512}.py); 512 protocol when >=512 px", partial(_free_form, None, family="mat-large")),
        MaskGeneratorSpec("mat-small", "MAT free-form small masks (mask_generator_{256,512}_small.py); 512 protocol when >=512 px", partial(_free_form, None, family="mat-small")),
        MaskGeneratorSpec("mat-train", "MAT's training masks: RandomMask(s, hole_range=[0, 1]) of mask_generator_{256,512}.py", partial(_free_form, None, family="mat-large")),
        MaskGeneratorSpec("comodgan", "CoModGAN's free-form masks (training/mask_generator.py, hole_range [0, 1]) at 512", partial(_free_form, "comodgan-512")),
    ]
    for size in (256, 512):
        specs.append(MaskGeneratorSpec(f"mat-large-{size}", f"MAT large masks, mask_generator_{size}.py", partial(_free_form, f"mat-large-{size}")))
        specs.append(MaskGeneratorSpec(f"mat-small-{size}", f"MAT small masks, mask_generator_{size}_small.py", partial(_free_form, f"mat-small-{size}")))
    return specs


BUILTIN_KINDS: list[MaskGeneratorSpec] = [
    MaskGeneratorSpec("box", "one random axis-aligned box, 10-50 % of the area", partial(_simple, "box_mask")),
    MaskGeneratorSpec("center", "the centered box of half height and width", partial(_simple, "center_mask")),
    MaskGeneratorSpec("outpaint", "LaMa outpainting borders: each side w.p. 1/2, 4-25 % deep", partial(_simple, "outpaint_mask")),
    MaskGeneratorSpec("repaint-every-second-line", "RePaint ev2li: every second row unknown (50 %)", partial(_simple, "every_second_line")),
    MaskGeneratorSpec("repaint-half", "RePaint genhalf: the right half unknown (50 %)", partial(_simple, "half_mask")),
    MaskGeneratorSpec("repaint-expand", "RePaint ex64: only the center 1/4 x 1/4 known (93.75 %)", partial(_simple, "expand_mask")),
    MaskGeneratorSpec("repaint-nn2", "RePaint nn2: only every second pixel of every second row known (75 %)", partial(_simple, "super_resolve_2x")),
    *_lama_kinds(),
    *_mat_kinds(),
]
