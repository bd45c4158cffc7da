"""Write ``tests/fixtures/mat_tiny_snapshot.pkl`` with MAT's own persistence code.

The fixture is a training snapshot in the layout of the released ``.pkl`` files
(``CelebA-HQ_512.pkl``, ``Places_512_FullData.pkl``, ...): ``pickle.dump`` of the dict that
``training/training_loop.py`` saves, ``{training_set_kwargs, val_set_kwargs, G, D, G_ema,
augment_pipe}``, whose networks are ``torch_utils.persistence`` objects. Only the sizes are
small (the zoo's ``tiny`` preset, 32 px with 16 x 16 tokens, made smaller still: dim 4, one
block per stage, at most 4 channels), so that it weighs about 200 KB instead of a few hundred MB.

The official code is NOT part of this repository; fetch it outside the tree and pass its path::

    git clone https://github.com/fenglinglwb/MAT /tmp/mat-official
    python benchmarks/mat_official/make_pkl_fixture.py --official /tmp/mat-official

Needs ``timm`` and ``scipy`` (the official files import them). What it does:

1. copies ``networks/``, ``torch_utils/``, ``dnnlib/``, ``training/`` and ``legacy.py`` of the
   checkout into a temporary folder and there replaces the constants that ``networks/mat.py``
   hard-codes for 256/512 px (channel table, 64 x 64 token grid, dim 180, 6 heads, depths,
   windows, the 16 x 16 noise square) by :data:`OVERRIDES` and the ``tiny`` preset's (each replacement must match
   exactly once, or the script stops);
2. builds ``Generator`` and ``Discriminator`` with those classes, and ``G_ema`` as
   ``copy.deepcopy(G)`` as ``training_loop.py`` does; gives every tensor random values and
   makes ``G`` differ from ``G_ema``, so a reader that mixes them up is caught;
3. writes the snapshot as ``training_loop.py`` does (``copy.deepcopy(module).eval()
   .requires_grad_(False).cpu()``, ``pickle.dump``) and reads it back with the official
   ``legacy.load_network_pkl``: the loaded networks' state dicts must equal the originals;
4. writes the fixture: the same snapshot, with one change. A persistence pickle stores the
   source code of each class's module (``module_src``); the fixture stores, in its place, a
   stand-in module that, if a loader ever executed it, creates the file named by the
   environment variable ``ZOO_PKL_TRAP``. The zoo's test sets that variable and checks that
   ``zoo import`` creates nothing (and that a loader that does execute ``module_src``, as
   ``torch_utils.persistence`` does, would have created it). MAT's source is not stored;
5. writes ``mat_tiny_snapshot.json`` beside it: per network, the number of tensors and a
   sha256 of its ``state_dict()`` (keys and float32 values), which the test compares with
   what ``zoo import`` kept.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "mat_tiny_snapshot.pkl"

#: the fixture's architecture as `zoo import mat --preset tiny --set ...` takes it: the tiny
#: preset made smaller still (a few hundred KB); the test reads it from the JSON
OVERRIDES = {"z_dim": 8, "w_dim": 8, "channel_base": 64, "channel_max": 4, "dim": 4, "num_heads": 1, "depths": [1, 1, 1, 1, 1]}
TINY = {"resolution": 32, "mapping_layers": 2, "token_res": 16, "window_sizes": [4, 4, 4, 4, 4], "square": 4}  # the tiny preset's, kept

#: (text in networks/mat.py, replacement, why): what mat.py hard-codes, set to the above
PATCHES = [
    ("    NF = {512: 64, 256: 128, 128: 256, 64: 512, 32: 512, 16: 512, 8: 512, 4: 512}\n    return NF[2 ** stage]",
     f"    return min({OVERRIDES['channel_max']}, {OVERRIDES['channel_base']} // 2 ** stage)", "nf(): channel_base, channel_max"),
    ("dim=180, w_dim=512", f"dim={OVERRIDES['dim']}, w_dim=512", "FirstStage dim"),
    ("        res = 64\n", f"        res = {TINY['token_res']}\n", "token grid"),
    ("depths = [2, 3, 4, 3, 2]", f"depths = {OVERRIDES['depths']}", "blocks per stage"),
    ("num_heads = 6", f"num_heads = {OVERRIDES['num_heads']}", "attention heads"),
    ("window_sizes = [8, 16, 16, 16, 8]", f"window_sizes = {TINY['window_sizes']}", "windows"),
    ("range(int(np.log2(16)))", f"range(int(np.log2({TINY['token_res'] // 4})))", "down_conv: log2(token_res / 4)"),
    ("self.to_square = FullyConnectedLayer(in_features=dim, out_features=16*16", f"self.to_square = FullyConnectedLayer(in_features=dim, out_features={TINY['square']}*{TINY['square']}", "first-stage noise square"),
    ("self.to_square = FullyConnectedLayer(in_features=w_dim, out_features=16*16", f"self.to_square = FullyConnectedLayer(in_features=w_dim, out_features={TINY['square']}*{TINY['square']}", "second-stage noise square"),
    (".view(-1, 16, 16)", f".view(-1, {TINY['square']}, {TINY['square']})", "second-stage noise square"),
]

TRAP = '''"""Stand-in for the module source a torch_utils.persistence pickle stores (MAT's own source
is not redistributed in this test fixture). A loader that executes it creates the file named
by $ZOO_PKL_TRAP, which proves that it ran code from the pickle."""
import os
import pathlib

if os.environ.get("ZOO_PKL_TRAP"):
    pathlib.Path(os.environ["ZOO_PKL_TRAP"]).touch()
'''


def patched_checkout(official: Path, tmp: Path) -> Path:
    for name in ("networks", "torch_utils", "dnnlib", "training"):
        shutil.copytree(official / name, tmp / name)
    shutil.copy(official / "legacy.py", tmp / "legacy.py")
    path = tmp / "networks" / "mat.py"
    text = path.read_text()
    for old, new, why in PATCHES:
        count = text.count(old)
        if count != 1:
            sys.exit(f"networks/mat.py: {why}: expected the text {old!r} once, found it {count} times (another MAT version?)")
        text = text.replace(old, new)
    path.write_text(text)
    return tmp


def state_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def randomise(module: torch.nn.Module, gen: torch.Generator, scale: float = 0.2) -> None:
    """Random values in every float tensor (their init is often 0 or 1, which hides mix-ups)."""
    with torch.no_grad():
        for t in list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]:
            t.add_(torch.randn(t.shape, generator=gen) * scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, type=Path, help="folder of the official MAT code (outside this repo)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"fixture path (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if ROOT in args.official.resolve().parents or args.official.resolve() == ROOT:
        sys.exit("--official must be outside this repository")

    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(patched_checkout(args.official.resolve(), Path(tmp))))
        import legacy  # noqa: E402  (the official code)
        from networks.mat import Discriminator, Generator  # noqa: E402
        from torch_utils import persistence  # noqa: E402
        from training.augment import AugmentPipe  # noqa: E402

        torch.manual_seed(args.seed)
        gen = torch.Generator().manual_seed(args.seed)
        common = dict(c_dim=0, img_resolution=TINY["resolution"], img_channels=3)
        G = Generator(z_dim=OVERRIDES["z_dim"], w_dim=OVERRIDES["w_dim"], mapping_kwargs=dict(num_layers=TINY["mapping_layers"]), **common).train().requires_grad_(False)
        D = Discriminator(mbstd_group_size=2, **common).train().requires_grad_(False)
        randomise(G, gen)
        randomise(D, gen)
        G_ema = copy.deepcopy(G).eval()
        randomise(G, gen, scale=0.05)  # G has trained on after the last EMA update
        augment_pipe = AugmentPipe(xflip=1, rotate90=1, xint=1).train().requires_grad_(False)

        snapshot = dict(training_set_kwargs=dict(class_name="datasets.dataset_512.ImageFolderMaskDataset", path="data/train", resolution=32),
                        val_set_kwargs=dict(class_name="datasets.dataset_512_val.ImageFolderMaskDataset", path="data/val", resolution=32))
        for name, module in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", augment_pipe)]:
            snapshot[name] = copy.deepcopy(module).eval().requires_grad_(False).cpu()  # training_loop.py
        expected = {name: {"tensors": len(snapshot[name].state_dict()), "sha256": state_digest(snapshot[name].state_dict())} for name in ("G", "G_ema", "D")}

        # 3. the official loader reads what the official writer wrote
        buf = io.BytesIO()
        pickle.dump(snapshot, buf)
        loaded = legacy.load_network_pkl(io.BytesIO(buf.getvalue()))
        for name in ("G", "G_ema", "D"):
            got = state_digest(loaded[name].state_dict())
            if got != expected[name]["sha256"]:
                sys.exit(f"legacy.load_network_pkl read back a different {name}")
        print(f"official round trip: {len(buf.getvalue()) / 1024:.0f} KB with the module sources; legacy.load_network_pkl reads G, G_ema, D back equal")

        # 4. the fixture: module sources replaced by the trap
        for cls in persistence._decorators:
            cls._orig_module_src = TRAP
        data = pickle.dumps(snapshot)
        if b"class FirstStage" in data or b"def nf(" in data:
            sys.exit("the fixture still holds MAT source code")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".pkl.tmp")
    tmp_out.write_bytes(data)
    os.replace(tmp_out, args.out)
    info = {
        "written_by": "benchmarks/mat_official/make_pkl_fixture.py (fenglinglwb/MAT torch_utils.persistence, pickle.dump as training/training_loop.py)",
        "preset": "tiny",
        "overrides": OVERRIDES,
        "digest": "sha256 over sorted state_dict keys: key utf-8 bytes, then the tensor as contiguous float32 bytes",
        "networks": expected,
        "trap_env": "ZOO_PKL_TRAP",
    }
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {args.out} ({len(data) / 1024:.0f} KB) and {args.out.with_suffix('.json').name}: "
          + ", ".join(f"{k} {v['tensors']} tensors" for k, v in expected.items()))


if __name__ == "__main__":
    main()
