"""The embedded default: a stand-in checkpoint (and, later, sample images and labels).

No weights can be downloaded here, so the demo and the tests make a checkpoint with exactly the
layout MoCo's `main_lincls.py` saves, filled with deterministic random weights. Its BatchNorm
running statistics are measured on random inputs (not left at 0/1), so eval-mode BatchNorm
does real work and an exporter that mishandled it would show.
"""

from __future__ import annotations

from typing import Optional

from .checkpoint import DEFAULT_ARCH


def standin_model(seed: int = 0, arch: str = DEFAULT_ARCH, num_classes: int = 1000,
                  calibration_batches: int = 2, batch_size: int = 4):
    """A torchvision model with seeded weights and measured BatchNorm statistics, in eval mode."""
    import torch
    import torchvision

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                # Non-trivial affine parameters, and a cumulative (not momentum) average of the
                # batch statistics so that eval mode normalises activations to a sane scale.
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.momentum = None
                m.reset_running_stats()
        # main_lincls.py re-initialises the classifier like this before training it.
        model.fc.weight.normal_(0.0, 0.01, generator=gen)
        model.fc.bias.copy_(0.01 * torch.randn(model.fc.bias.shape, generator=gen))
        model.train()
        for _ in range(calibration_batches):
            model(torch.randn(batch_size, 3, 224, 224, generator=gen))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    return model.eval()


def write_checkpoint(model, path: str, arch: str = DEFAULT_ARCH, epoch: int = 100,
                     best_acc1: float = 67.7, lr: float = 30.0) -> str:
    """Save `model` exactly as MoCo's main_lincls.py does (DataParallel keys, SGD state)."""
    import torch

    state = {f"module.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    # main_lincls.py optimises only fc.weight and fc.bias (the backbone is frozen): SGD with
    # momentum 0.9 and no weight decay, so its state holds two momentum buffers.
    params = [model.fc.weight, model.fc.bias]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=0.0)
    for p in params:
        optimizer.state[p] = {"momentum_buffer": torch.zeros_like(p)}
    ckpt = {
        "epoch": epoch,
        "arch": arch,
        "state_dict": state,
        "best_acc1": torch.tensor(best_acc1),
        "optimizer": optimizer.state_dict(),
    }
    torch.save(ckpt, path)
    return path


def make_standin_checkpoint(path: str, seed: int = 0, arch: str = DEFAULT_ARCH,
                            num_classes: int = 1000, model=None) -> str:
    """Write a stand-in `model_lincls_best.pth.tar`; pass `model` to save one already built."""
    if model is None:
        model = standin_model(seed=seed, arch=arch, num_classes=num_classes)
    return write_checkpoint(model, path, arch=arch)


DEFAULT_WORK_DIR = "work/demo"


def run_demo(work_dir: str = DEFAULT_WORK_DIR, seed: int = 0) -> int:
    """The embedded default, end to end on this machine: stand-in checkpoint → verified ONNX."""
    import os
    import time

    from .export import export_checkpoint

    os.makedirs(work_dir, exist_ok=True)
    start = time.perf_counter()
    ckpt = os.path.join(work_dir, "model_lincls_best.pth.tar")
    if not os.path.exists(ckpt):
        make_standin_checkpoint(ckpt, seed=seed)
    print(f"[1/1] checkpoint {ckpt}: a STAND-IN with random weights (seed {seed}), not a trained model")
    result = export_checkpoint(ckpt, os.path.join(work_dir, "moco-v2-bs1.onnx"), batch_size=1)
    print(f"      exported {result['output']}; verified: {result['verify'].summary()}")
    print(f"demo finished in {time.perf_counter() - start:.1f}s (files under {work_dir}/)")
    return 0


def main(argv: Optional[list] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mocoinfer.demo",
        description="Run the embedded demo, or only write a stand-in MoCo-v2 checkpoint.")
    parser.add_argument("--work-dir", default=DEFAULT_WORK_DIR, help="where the demo's files go (default: %(default)s)")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="only write a stand-in main_lincls.py checkpoint to PATH and exit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.checkpoint:
        make_standin_checkpoint(args.checkpoint, seed=args.seed)
        print(f"wrote stand-in checkpoint {args.checkpoint} (random weights, seed {args.seed}; NOT a trained model)")
        return 0
    return run_demo(args.work_dir, seed=args.seed)


if __name__ == "__main__":
    import sys

    from .cli import run_main

    sys.exit(run_main(main))
