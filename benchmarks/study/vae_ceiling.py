"""The VAE's share of dit-mca's error in a study folder: for each dit-mca run (and variant)
and test mask kind, the ``zoo_score`` hook's ``vae_psnr`` (the ground truth encoded and
decoded) and ``vae_ceiling_psnr`` (that reconstruction composited into the hole: what a
perfect denoiser would score, comparable with the study's psnr column). For cells sampled
before the hook reported them.

    OMP_NUM_THREADS=1 python benchmarks/study/vae_ceiling.py benchmarks/study/run
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def main(study: Path) -> None:
    from zoo.data.evalset import load_eval_set
    from zoo.runner import build_model
    from zoo_plugins.dit_mca.sample import score

    print("| run | budget | mask | VAE steps | vae_psnr | vae_ceiling_psnr |\n|---|---|---|---|---|---|")
    for ckpt in sorted(study.glob("runs/dit-mca*/*/model.safetensors")):
        model, _ = build_model("dit-mca", str(ckpt), None)
        model.eval()
        steps = "?"
        run_json = ckpt.parent / "run.json"
        if run_json.is_file():
            import json

            stages = json.loads(run_json.read_text()).get("budget", {}).get("stages", [])
            steps = next((str(st["steps"]) for st in stages if st.get("name") == "vae"), "?")
        for root in sorted(study.glob("evalsets/test-*")):
            ev = load_eval_set(root)
            total: dict[str, float] = {}
            for start in range(0, len(ev.items), 16):
                pairs = [ev.load(i) for i in range(start, min(start + 16, len(ev.items)))]
                x, m = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
                with torch.no_grad():
                    out = score(model, x, m)
                for k in ("vae_psnr", "vae_ceiling_psnr"):
                    total[k] = total.get(k, 0.0) + out[k] * len(pairs)
            n = len(ev.items)
            print(f"| {ckpt.parent.parent.name} | {ckpt.parent.name} | {root.name[5:]} | {steps} | "
                  f"{total['vae_psnr'] / n:.2f} | {total['vae_ceiling_psnr'] / n:.2f} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/study/vae_ceiling.py STUDY_FOLDER")
    main(Path(sys.argv[1]))
