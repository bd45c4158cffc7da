"""maskgit end to end: one `zoo train` runs both stages on the shared engine, stage by stage
runs, a diffusers VQModel folder as tokenizer, --resume, then sample and score."""

from __future__ import annotations

import json
import shutil

import torch

from zoo.checkpoint import load_checkpoint
from zoo.imageio import load_image, load_mask


def tokenizer_weights(path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_checkpoint(path, "maskgit")[1].items() if k.startswith("tokenizer.")}


def test_cli_one_command_trains_both_stages_then_sample_and_score(cli, tmp_path, image_folder):
    images, masks = image_folder
    run = tmp_path / "run"
    r = cli("train", "maskgit", "--data", "shapes", "--preset", "tiny", "--steps", "4", "--batch-size", "2", "--out", run)
    assert r.exit_code == 0, r.output
    stages = json.loads((run / "stages.json").read_text())["stages"]
    assert [(s["name"], s["steps"]) for s in stages] == [("tokenizer", 2), ("transformer", 2)]
    for name in ("tokenizer", "transformer"):  # each stage is a run of the shared engine in its own folder
        assert (run / name / "checkpoints" / "step_0000002" / "model.safetensors").is_file()
        assert json.loads((run / name / "stage.json").read_text())["stage"] == name
        logged = [json.loads(line) for line in (run / name / "log.jsonl").read_text().splitlines()]
        key = "rec_l1" if name == "tokenizer" else "ce_masked"
        assert [rec["step"] for rec in logged if key in rec] == [1, 2]
    ckpt = run / "model.safetensors"
    # the final checkpoint: the tokenizer of stage 1, the transformer of stage 2
    assert all(torch.equal(v, tokenizer_weights(run / "tokenizer/checkpoints/step_0000002/model.safetensors")[k]) for k, v in tokenizer_weights(ckpt).items())
    out = tmp_path / "out"
    r = cli("sample", "maskgit", "--checkpoint", ckpt, "--images", images, "--masks", masks, "--out", out, "--num-samples", "2", "--set", "total_iter=5")
    assert r.exit_code == 0, r.output
    assert "5 network calls per image" in r.output
    gt, hole = load_image(images / "img0.png"), load_mask(masks / "img0.png")
    a, b = load_image(out / "img0_s0.png"), load_image(out / "img0_s1.png")
    assert torch.equal((a - gt) * (1 - hole), torch.zeros_like(a)) and torch.equal((b - gt) * (1 - hole), torch.zeros_like(b))
    assert not torch.equal(a, b)  # two different completions
    r = cli("score", "maskgit", "--checkpoint", ckpt, "--data", "shapes", "--masks", "box", "--metric", "psnr", "--count", "4", "--size", "32",
            "--out", tmp_path / "score", "--json")
    assert r.exit_code == 0, r.output
    found = json.loads(r.output[r.output.index("{"):])["method_scores"]
    assert set(found) == {"maskgit/tokenizer_psnr", "maskgit/tokenizer_ceiling_psnr", "maskgit/hole_token_accuracy", "maskgit/hole_token_nll"}


def test_stage_by_stage_and_resume(cli, tmp_path):
    tok = tmp_path / "tok"
    r = cli("train", "maskgit", "--data", "shapes", "--preset", "tiny", "--set", "stage=tokenizer", "--steps", "2", "--batch-size", "2", "--out", tok)
    assert r.exit_code == 0, r.output
    assert [s["name"] for s in json.loads((tok / "stages.json").read_text())["stages"]] == ["tokenizer"]
    tr = tmp_path / "tr"
    r = cli("train", "maskgit", "--data", "shapes", "--preset", "tiny", "--set", "stage=transformer", "--set", f"tokenizer={tok}",
            "--steps", "3", "--batch-size", "2", "--out", tr, "--save-every", "1", "--keep-last", "0")
    assert r.exit_code == 0, r.output
    assert not (tr / "tokenizer").exists() and (tr / "transformer/checkpoints/step_0000003").is_dir()
    mine, theirs = tokenizer_weights(tr / "model.safetensors"), tokenizer_weights(tok / "model.safetensors")
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    # --resume RUN finds the stage folders; --steps extends the transformer stage
    r = cli("train", "maskgit", "--data", "shapes", "--resume", tr, "--steps", "5")
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in (tr / "transformer/events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "resume" and e["step"] == 3 for e in events)
    assert (tr / "transformer/checkpoints/step_0000005").is_dir()
    assert load_checkpoint(tr / "model.safetensors", "maskgit")[0].step == 5
    # a run of both stages resumes in its last stage; the finished tokenizer stage is not retrained
    both = tmp_path / "both"
    assert cli("train", "maskgit", "--data", "shapes", "--preset", "tiny", "--steps", "4", "--batch-size", "2", "--out", both).exit_code == 0
    before = tokenizer_weights(both / "model.safetensors")
    r = cli("train", "maskgit", "--data", "shapes", "--resume", both, "--steps", "6")
    assert r.exit_code == 0, r.output
    assert (both / "transformer/checkpoints/step_0000004").is_dir() and not (both / "tokenizer/checkpoints/step_0000003").exists()
    after = tokenizer_weights(both / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_diffusers_vqmodel_folder_as_tokenizer(cli, tmp_path, image_folder):
    from diffusers import VQModel

    torch.manual_seed(0)
    vq = VQModel(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                 layers_per_block=1, latent_channels=8, num_vq_embeddings=32, vq_embed_dim=8, norm_num_groups=8, sample_size=32)
    folder = tmp_path / "my-vq"
    vq.save_pretrained(folder)
    run = tmp_path / "run"
    r = cli("train", "maskgit", "--data", "shapes", "--preset", "tiny", "--set", f"tokenizer={folder}", "--steps", "2", "--batch-size", "2", "--out", run)
    assert r.exit_code == 0, r.output
    assert [s["name"] for s in json.loads((run / "stages.json").read_text())["stages"]] == ["transformer"]
    meta, tensors = load_checkpoint(run / "model.safetensors", "maskgit")
    assert meta.config["tokenizer_config"]["num_vq_embeddings"] == 32 and meta.config["codebook_size"] == 32
    assert tensors["transformer.bias"].shape == (32,)  # logits over the folder's 32 codes
    sd = vq.state_dict()
    assert all(torch.equal(tensors[f"tokenizer.{k}"], v) for k, v in sd.items())
    shutil.rmtree(folder)  # the checkpoint needs the folder no more
    images, masks = image_folder
    r = cli("sample", "maskgit", "--checkpoint", run / "model.safetensors", "--images", images, "--masks", masks, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    r = cli("train", "maskgit", "--data", "shapes", "--preset", "tiny", "--set", f"tokenizer={tmp_path / 'nothing'}", "--steps", "2", "--out", tmp_path / "bad")
    assert r.exit_code == 2 and "neither a diffusers VQModel folder" in r.output and r.output.strip().count("\n") == 0


def test_resume_finds_stage_folders(tmp_path):
    from zoo.train.state import resolve_resume, run_dir_of

    run = tmp_path / "run"
    for i, stage in enumerate(("tokenizer", "transformer")):
        (run / stage).mkdir(parents=True)
        (run / stage / "stage.json").write_text(json.dumps({"stage": stage, "index": i}))
    for step in (2, 4):
        (run / "tokenizer/checkpoints" / f"step_{step:07d}").mkdir(parents=True)
        (run / "tokenizer/checkpoints" / f"step_{step:07d}" / "state.safetensors").write_bytes(b"")
    assert resolve_resume(run) == run / "tokenizer/checkpoints/step_0000004"
    (run / "transformer/checkpoints/step_0000001").mkdir(parents=True)
    (run / "transformer/checkpoints/step_0000001/state.safetensors").write_bytes(b"")
    assert resolve_resume(run) == run / "transformer/checkpoints/step_0000001"  # the last stage with a checkpoint
    assert resolve_resume(run / "tokenizer") == run / "tokenizer/checkpoints/step_0000004"
    assert run_dir_of(run / "tokenizer/checkpoints/step_0000004") == run
    assert run_dir_of(run / "transformer") == run
    plain = tmp_path / "plain/checkpoints/step_0000001"  # single-stage runs are unchanged
    assert run_dir_of(plain) == tmp_path / "plain"


def test_sigint_in_stage_one_then_resume_the_run(cli, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    run, out = tmp_path / "run", tmp_path / "out.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    args = ["train", "maskgit", "--data", "shapes", "--preset", "tiny", "--steps", "800", "--batch-size", "2", "--no-tensorboard", "--out", str(run)]
    with open(out, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "zoo_cli.main", *args], stdout=fh, stderr=subprocess.STDOUT, env=env)
    log = run / "tokenizer" / "log.jsonl"
    end = time.time() + 120
    while not (log.is_file() and log.read_text().strip()):
        assert proc.poll() is None and time.time() < end, out.read_text()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    text = out.read_text()
    assert f"--resume {run / 'tokenizer'}" in text and "Traceback" not in text
    step = [json.loads(line) for line in (run / "tokenizer/events.jsonl").read_text().splitlines() if '"interrupted"' in line][0]["step"]
    assert 1 <= step < 400 and not (run / "model.safetensors").exists() and not (run / "transformer").exists()
    # the printed folder and the run folder both resume; the tokenizer continues, then stage 2 runs
    r = cli("train", "maskgit", "--data", "shapes", "--resume", run / "tokenizer", "--steps", 2 * step + 2, "--no-tensorboard")
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in (run / "tokenizer/events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "resume"] == [step]
    assert (run / f"tokenizer/checkpoints/step_{step + 1:07d}").is_dir() and (run / f"transformer/checkpoints/step_{step + 1:07d}").is_dir()
    assert load_checkpoint(run / "model.safetensors", "maskgit")[0].step == 2 * step + 2
