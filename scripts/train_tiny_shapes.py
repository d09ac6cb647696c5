"""Train the embedded tiny-shapes model from scratch: VAE, then DiT + T5 encoder, then the reward model.

Every stage is seeded and runs on procedurally generated scenes (ecad.models.tiny_shapes.scenes), so the
same command on the same hardware reproduces the shipped weights. Stages write into --work and can be
run one at a time (--stages); the final folders land in --out (the package's weights folder).

    PYTHONPATH=src python scripts/train_tiny_shapes.py
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, PixArtTransformer2DModel
from transformers import T5EncoderModel

from ecad.models.tiny_shapes import reward as reward_lib
from ecad.models.tiny_shapes.build import (
    MAX_SEQUENCE_LENGTH,
    TEXT_DIM,
    build_pipeline,
    build_scheduler,
    build_text_encoder,
    build_tokenizer,
    build_transformer,
    build_vae,
)
from ecad.models.tiny_shapes.scenes import caption, parse_caption, render_batch, sample_scene

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "ecad" / "tiny_shapes" / "weights"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def constant_lr(step: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then constant (``--dit-schedule constant``): the weights after K steps do not depend on
    the planned total, so every snapshot of a long run equals the result of ``--dit-steps K``."""
    return peak * min(1.0, (step + 1) / warmup)


def train_vae(args: argparse.Namespace, device: torch.device) -> AutoencoderKL:
    """Reconstruction (L1 + MSE) with a light KL term, then set scaling_factor so latents have unit std."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    vae = build_vae().to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    for step in range(args.vae_steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.vae_steps, args.vae_lr, 20)
        x = render_batch([sample_scene(rng, "all") for _ in range(args.vae_batch)]).to(device)
        posterior = vae.encode(x * 2 - 1).latent_dist
        recon = vae.decode(posterior.sample()).sample
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        loss = F.l1_loss(recon, x * 2 - 1) + F.mse_loss(recon, x * 2 - 1) + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.vae_steps - 1:
            log(f"vae step {step} loss {loss.item():.4f} kl {kl.item():.2f}")
    vae.eval()
    with torch.no_grad():
        x = render_batch([sample_scene(rng, "all") for _ in range(256)]).to(device)
        latents = vae.encode(x * 2 - 1).latent_dist.mean
        recon = vae.decode(latents).sample
        psnr = -10 * torch.log10(F.mse_loss((recon.clamp(-1, 1) + 1) / 2, x)).item()
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    log(f"vae done: recon PSNR {psnr:.2f} dB, scaling_factor {vae.config.scaling_factor:.4f}")
    return vae


def tokenize(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize exactly as PixArtAlphaPipeline.encode_prompt does."""
    enc = tokenizer(
        texts,
        padding="max_length",
        max_length=MAX_SEQUENCE_LENGTH,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    return enc.input_ids, enc.attention_mask


def encode_dataset(
    vae: AutoencoderKL, n: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Render n training-split scenes once and keep their latent posterior (mean, std) for resampling."""
    rng = np.random.default_rng(seed + 1)
    means, stds, texts = [], [], []
    with torch.no_grad():
        for start in range(0, n, 256):
            scenes = [sample_scene(rng, "train") for _ in range(min(256, n - start))]
            dist = vae.encode(render_batch(scenes).to(device) * 2 - 1).latent_dist
            means.append(dist.mean * vae.config.scaling_factor)
            stds.append(dist.std * vae.config.scaling_factor)
            texts += [caption(s) for s in scenes]
    return torch.cat(means), torch.cat(stds), texts


class TextReadout(torch.nn.Module):
    """Training-only head: predicts the caption's canonical scene (layout, then shape/colour/size of each
    slot, the reward model's targets) from the masked mean of the T5 outputs. Its loss teaches the jointly
    trained encoder to bind each attribute to its object and each object to its place, which diffusion
    gradients alone teach slowly; the head is dropped after training."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(TEXT_DIM, sum(reward_lib.HEAD_SIZES))

    def loss(self, hidden: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return reward_lib.loss(list(self.linear(pooled).split(reward_lib.HEAD_SIZES, dim=1)), target)


def pretrain_text_encoder(
    args: argparse.Namespace,
    text_encoder: T5EncoderModel,
    readout: TextReadout,
    ids: torch.Tensor,
    mask: torch.Tensor,
    target: torch.Tensor,
    device: torch.device,
) -> None:
    """A short caption-only warm start of the T5 encoder on the readout loss (no images involved)."""
    params = list(text_encoder.parameters()) + list(readout.parameters())
    opt = torch.optim.AdamW(params, lr=args.text_lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(args.seed + 3)
    for step in range(args.text_steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.text_steps, args.text_lr, 20)
        idx = torch.randint(0, len(ids), (args.text_batch,), generator=gen)
        b_mask = mask[idx].to(device)
        loss = readout.loss(text_encoder(ids[idx].to(device), attention_mask=b_mask)[0], b_mask, target[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == args.text_steps - 1:
            log(f"text step {step} readout loss {loss.item():.4f}")


def train_dit(
    args: argparse.Namespace, vae: AutoencoderKL, device: torch.device
) -> tuple[PixArtTransformer2DModel, T5EncoderModel]:
    """DDPM v-prediction loss (x0-space weight min(SNR + 1, 5)), T5 trained jointly, 10% empty captions
    for classifier-free guidance; the shipped weights are an EMA of the trained ones."""
    torch.manual_seed(args.seed)
    means, stds, texts = encode_dataset(vae, args.dit_dataset, args.seed, device)
    log(f"encoded {len(texts)} training scenes")
    tokenizer = build_tokenizer()
    ids, mask = tokenize(tokenizer, texts)
    empty_ids, empty_mask = tokenize(tokenizer, [""])
    target = reward_lib.targets([parse_caption(t) for t in texts])
    transformer = build_transformer(args.hidden, args.layers).to(device).train()
    text_encoder = build_text_encoder().to(device).train()
    readout = TextReadout().to(device)
    pretrain_text_encoder(args, text_encoder, readout, ids, mask, target, device)
    params = list(transformer.parameters()) + list(text_encoder.parameters()) + list(readout.parameters())
    ema = [
        copy.deepcopy(transformer).eval().requires_grad_(False),
        copy.deepcopy(text_encoder).eval().requires_grad_(False),
    ]
    opt = torch.optim.AdamW(params, lr=args.dit_lr, weight_decay=0.01)
    alphas_cumprod = build_scheduler().alphas_cumprod.to(device)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.time()
    snapshots: list[dict] = []
    for step in range(args.dit_steps):
        for group in opt.param_groups:
            group["lr"] = (
                constant_lr(step, args.dit_lr, args.dit_warmup)
                if args.dit_schedule == "constant"
                else cosine_lr(step, args.dit_steps, args.dit_lr, args.dit_warmup)
            )
        idx = torch.randint(0, len(texts), (args.dit_batch,), generator=gen)
        x0 = means[idx] + stds[idx] * torch.randn(means[idx].shape, generator=gen).to(device)
        drop = torch.rand(args.dit_batch, generator=gen) < args.cfg_dropout
        b_ids = torch.where(drop[:, None], empty_ids, ids[idx]).to(device)
        b_mask = torch.where(drop[:, None], empty_mask, mask[idx]).to(device)
        t = torch.randint(0, len(alphas_cumprod), (args.dit_batch,), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        ac = alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = ac.sqrt() * x0 + (1 - ac).sqrt() * noise
        cond = text_encoder(b_ids, attention_mask=b_mask)[0]
        pred = transformer(
            xt,
            encoder_hidden_states=cond,
            encoder_attention_mask=b_mask,
            timestep=t,
            added_cond_kwargs={"resolution": None, "aspect_ratio": None},
        ).sample
        v = ac.sqrt() * noise - (1 - ac).sqrt() * x0
        snr = ac.flatten() / (1 - ac.flatten())
        weight = (snr + 1).clamp(max=5.0) / (snr + 1)  # x0-space weight min(snr + 1, 5): never below 1
        loss = (weight * (pred - v).pow(2).mean(dim=(1, 2, 3))).mean()
        if args.text_weight > 0 and not drop.all():
            keep = ~drop.to(device)
            loss = loss + args.text_weight * readout.loss(cond[keep], b_mask[keep], target[idx][keep].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for live, avg in zip((transformer, text_encoder), ema, strict=True):
                for p, q in zip(live.parameters(), avg.parameters(), strict=True):
                    q.lerp_(p, 1 - decay)
        if step % 100 == 0 or step == args.dit_steps - 1:
            log(f"dit step {step} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e}")
        if (
            args.snapshot_every and (step + 1) % args.snapshot_every == 0
        ):  # loadable EMA snapshots to evaluate while training goes on
            path = args.work / f"pipeline_step{step + 1:05d}"
            build_pipeline(copy.deepcopy(ema[0]), copy.deepcopy(ema[1]), vae).save_pretrained(path)
            snapshots.append({"step": step + 1, "dit_loop_s": time.time() - start, "path": str(path)})
            (args.work / "dit_snapshots.json").write_text(json.dumps(snapshots, indent=2))
    return ema[0], ema[1]


def train_reward(args: argparse.Namespace, device: torch.device) -> reward_lib.RewardModel:
    """Attribute classifier on augmented renders of all captions (train and held-out alike: the reward
    model is a judge, it must know every caption)."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed + 2)
    model = reward_lib.RewardModel().to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.reward_lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed + 2)
    for step in range(args.reward_steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.reward_steps, args.reward_lr, 50)
        scenes = [sample_scene(rng, "all") for _ in range(args.reward_batch)]
        images = reward_lib.augment(render_batch(scenes), gen).to(device)
        targets = reward_lib.targets([s.spec for s in scenes]).to(device)
        loss = reward_lib.loss(model(images), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == args.reward_steps - 1:
            log(f"reward step {step} loss {loss.item():.4f}")
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="weights folder (gets pipeline/ and reward/)")
    parser.add_argument("--work", type=Path, default=Path("runs/tiny_shapes"), help="intermediate checkpoints")
    parser.add_argument("--stages", default="vae,dit,reward", help="comma list of vae, dit, reward")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae-steps", type=int, default=900)
    parser.add_argument("--vae-batch", type=int, default=16)
    parser.add_argument("--vae-lr", type=float, default=2e-3)
    parser.add_argument("--vae-kl", type=float, default=1e-5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dit-steps", type=int, default=7500)
    parser.add_argument("--dit-batch", type=int, default=32)
    parser.add_argument("--dit-lr", type=float, default=1e-3)
    parser.add_argument("--dit-dataset", type=int, default=20000)
    parser.add_argument("--cfg-dropout", type=float, default=0.1)
    parser.add_argument("--dit-warmup", type=int, default=200)
    parser.add_argument("--dit-schedule", choices=("constant", "cosine"), default="cosine", help="LR after warm-up")
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument(
        "--snapshot-every", type=int, default=1000, help="save an EMA pipeline snapshot every N DiT steps (0: never)"
    )
    parser.add_argument("--text-steps", type=int, default=800, help="caption-only warm start of the T5 encoder")
    parser.add_argument("--text-batch", type=int, default=256)
    parser.add_argument("--text-lr", type=float, default=3e-3)
    parser.add_argument("--text-weight", type=float, default=0.1, help="readout loss weight during DiT training")
    parser.add_argument("--reward-steps", type=int, default=1200)
    parser.add_argument("--reward-batch", type=int, default=64)
    parser.add_argument("--reward-lr", type=float, default=2e-3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    stages = set(args.stages.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    if "vae" in stages:
        start = time.time()
        train_vae(args, device).save_pretrained(args.work / "vae")
        timings["vae_s"] = time.time() - start
    if "dit" in stages:
        start = time.time()
        vae = AutoencoderKL.from_pretrained(args.work / "vae").to(device).eval()
        transformer, text_encoder = train_dit(args, vae, device)
        pipe = build_pipeline(transformer=transformer.cpu(), text_encoder=text_encoder.cpu(), vae=vae.cpu())
        pipe.save_pretrained(args.out / "pipeline")
        timings["dit_s"] = time.time() - start
    if "reward" in stages:
        start = time.time()
        train_reward(args, device).cpu().save(args.out / "reward")
        timings["reward_s"] = time.time() - start
    record = {"args": {k: str(v) for k, v in vars(args).items()}, "timings": timings, "torch": torch.__version__}
    (args.work / f"train_{'_'.join(sorted(stages))}.json").write_text(json.dumps(record, indent=2))
    log(f"done: {timings}")


if __name__ == "__main__":
    main()
