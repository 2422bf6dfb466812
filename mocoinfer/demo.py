"""The embedded default: a stand-in checkpoint (and, later, sample images and labels).

No weights can be downloaded here, so the demo and the tests make a checkpoint with exactly the
layout MoCo's `main_lincls.py` saves, filled with deterministic random weights. Its BatchNorm
running statistics are measured on random inputs (not left at 0/1), so eval-mode BatchNorm
does real work and an exporter that mishandled it would show.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

from .checkpoint import DEFAULT_ARCH
from .transforms import DEFAULT_INTERPOLATION, INTERPOLATIONS


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


DEMO_IMAGES = 16


def make_sample_images(folder: str, n: int = DEMO_IMAGES, seed: int = 0) -> List[str]:
    """Write `n` ImageNet-style val images of varied sizes and the awkward modes PIL opens.

    Names follow ImageNet's `ILSVRC2012_val_%08d.JPEG`; some are PNG files or non-RGB modes
    behind that name, as real scraped data sets hold, and one carries an EXIF orientation tag
    (which torchvision, and so the pipeline, ignores).
    """
    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [(500, 375), (375, 500), (640, 480), (256, 256), (300, 900), (200, 150), (1024, 683), (333, 333)]
    kinds = ["RGB", "RGB", "L", "CMYK", "P-png", "RGBA-png", "RGB-exif", "RGB"]
    paths = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        # Smooth random colour fields plus stripes: distinct content that survives resizing.
        low = rng.uniform(0, 255, size=(4 + i % 5, 4 + (i * 3) % 7, 3)).astype(np.uint8)
        img = Image.fromarray(low, "RGB").resize((w, h), Image.BICUBIC)
        arr = np.asarray(img).copy()
        period = 6 + 3 * i
        arr[:, ::period] = rng.integers(0, 255, size=3, dtype=np.uint8)
        img = Image.fromarray(arr, "RGB")
        kind = kinds[i % len(kinds)]
        path = os.path.join(folder, f"ILSVRC2012_val_{i + 1:08d}.JPEG")
        if kind == "RGB":
            img.save(path, "JPEG", quality=90)
        elif kind == "L":
            img.convert("L").save(path, "JPEG", quality=90)
        elif kind == "CMYK":
            img.convert("CMYK").save(path, "JPEG", quality=90)
        elif kind == "P-png":
            img.convert("P", palette=Image.ADAPTIVE, colors=64).save(path, "PNG")
        elif kind == "RGBA-png":
            rgba = img.convert("RGBA")
            rgba.putalpha(Image.fromarray(rng.integers(0, 255, size=(h, w), dtype=np.uint8), "L"))
            rgba.save(path, "PNG")
        else:  # RGB-exif: rotated-by-90 orientation tag, which torchvision does not apply
            exif = Image.Exif()
            exif[0x0112] = 6
            img.save(path, "JPEG", quality=90, exif=exif.tobytes())
        paths.append(path)
    return paths


def reference_logits(model, paths: Sequence[str], interpolation: str = DEFAULT_INTERPOLATION):
    """The independent reference path: torchvision's own transform, then PyTorch, one image at a time."""
    import torch
    from PIL import Image
    from torchvision import transforms

    mode = {"bilinear": transforms.InterpolationMode.BILINEAR,
            "bicubic": transforms.InterpolationMode.BICUBIC}[interpolation]
    tf = transforms.Compose([transforms.Resize(256, interpolation=mode), transforms.CenterCrop(224),
                             transforms.ToTensor(),
                             transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    with torch.no_grad():
        batch = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])
        return model.eval()(batch)


def backbone_features(model, paths: Sequence[str], interpolation: str = DEFAULT_INTERPOLATION):
    """The pooled features (the classifier's input) of the images, on the reference path."""
    import torch

    backbone_fc = model.fc
    model.fc = torch.nn.Identity()
    try:
        return reference_logits(model, paths, interpolation)
    finally:
        model.fc = backbone_fc


def fit_classifier(model, paths: Sequence[str], interpolation: str = DEFAULT_INTERPOLATION, seed: int = 0,
                   features=None):
    """Set classifier rows from the sample images' features, as MoCo's linear evaluation learns them.

    A randomly initialised ResNet-50 predicts one class for everything; with one row per image
    (its centred, normalised feature), each image scores highest on its own class, so the demo
    predicts many distinct classes and any mix-up between files and results shows as an error.
    `features`: `backbone_features` of the same images, where the caller has them already.
    """
    import torch

    feats = (backbone_features(model, paths, interpolation) if features is None else features).double()
    # Ridge least squares: rows R with R @ f_j ~ 10 for the image's own class and ~ 0 for the
    # other images' classes. Features of a random network are strongly correlated, so a plain
    # nearest-feature rule would let several images share a class; the ridge keeps R well scaled,
    # so the tiny float differences between runtimes cannot flip a prediction.
    gram = feats @ feats.T
    ridge = 1e-6 * float(gram.diagonal().mean())
    rows = torch.linalg.solve(gram + ridge * torch.eye(len(paths), dtype=gram.dtype), feats) * 10.0
    gen = torch.Generator().manual_seed(seed)
    classes = torch.randperm(model.fc.out_features, generator=gen)[: len(paths)]
    with torch.no_grad():
        model.fc.weight.mul_(0.01)  # the other classes stay small random distractors
        model.fc.bias.zero_()
        model.fc.weight[classes] = rows.float()
    return model


def make_demo_inputs(work_dir: str, n: int = DEMO_IMAGES, seed: int = 0,
                     interpolation: str = DEFAULT_INTERPOLATION) -> dict:
    """Stand-in checkpoint, sample images and a val_label.txt whose labels come from the reference path."""
    from .atomic import atomic_write_text
    from .formats import format_labels

    val_dir = os.path.join(work_dir, "val")
    paths = make_sample_images(val_dir, n, seed)
    import torch

    model = standin_model(seed=seed)
    feats = backbone_features(model, paths, interpolation)
    model = fit_classifier(model, paths, interpolation, seed, features=feats)
    # The whole model's logits are its classifier on these features: one pass over the images,
    # not two (the demo's slowest input step).
    with torch.no_grad():
        logits = model.fc(feats)
    top2 = logits.topk(2, dim=1).values
    labels = logits.argmax(1).tolist()
    ckpt = make_standin_checkpoint(os.path.join(work_dir, "model_lincls_best.pth.tar"), model=model)
    label_file = os.path.join(work_dir, "val_label.txt")
    atomic_write_text(label_file, format_labels((os.path.basename(p), c) for p, c in zip(paths, labels)))
    return {"checkpoint": ckpt, "val_dir": val_dir, "labels": label_file, "images": len(paths),
            "distinct_classes": len(set(labels)),
            "min_top1_margin": float((top2[:, 0] - top2[:, 1]).min())}


def _folder_bytes(folder: str, suffix: str) -> List[int]:
    return [e.stat().st_size for e in os.scandir(folder) if e.is_file() and e.name.endswith(suffix)]


def compare_uint8_path(f32_prep: str, u8_prep: str, f32_results: str, u8_results: str) -> Tuple[str, bool]:
    """The demo's uint8 check: sizes on disk of both preprocessed folders, and whether the float
    model's result files on the uint8 files are byte for byte those on the float32 files."""
    f32, u8 = _folder_bytes(f32_prep, ".bin"), _folder_bytes(u8_prep, ".bin")
    names = sorted(n for n in os.listdir(f32_results) if not n.startswith("."))
    same = []
    for name in names:
        other = os.path.join(u8_results, name)
        if os.path.exists(other):
            with open(os.path.join(f32_results, name), "rb") as a, open(other, "rb") as b:
                same.append(a.read() == b.read())
    u8_names = os.listdir(u8_results)  # results only: the manifest lives beside the folder
    ok = bool(names) and len(same) == len(names) and all(same) and len(u8_names) == len(names)
    mb = 1024 * 1024
    text = (f"float32 files: {len(f32)} x {f32[0] if f32 else 0:,} bytes = {sum(f32) / mb:.1f} MiB; uint8 files: "
            f"{len(u8)} x {u8[0] if u8 else 0:,} bytes = {sum(u8) / mb:.1f} MiB ({sum(f32) / max(1, sum(u8)):.1f}x "
            f"smaller)\nthe float32 model's results on the uint8 files (normalised on the host) vs on the float32 "
            f"files: {sum(same)} of {len(names)} result files identical byte for byte"
            + ("" if ok else " -- MISMATCH"))
    return text, ok


def main(argv: Optional[list] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mocoinfer.demo",
        description="Make the demo's inputs (stand-in checkpoint, sample images, val_label.txt), "
                    "or only a stand-in MoCo-v2 checkpoint. `make demo` runs scripts/demo.sh, which calls this.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--make-inputs", metavar="WORK_DIR", help="write checkpoint, val/ images and val_label.txt here")
    group.add_argument("--checkpoint", metavar="PATH", help="only write a stand-in main_lincls.py checkpoint to PATH")
    group.add_argument("--compare-uint8", nargs=4, metavar=("F32_PREP", "U8_PREP", "F32_RESULTS", "U8_RESULTS"),
                       help="sizes of both preprocessed folders, and whether the results on the uint8 files "
                            "equal those on the float32 files byte for byte (exit 1 if not)")
    parser.add_argument("--images", type=int, default=DEMO_IMAGES,
                        help="number of sample images (default: %(default)s)")
    parser.add_argument("--interpolation", choices=sorted(INTERPOLATIONS), default=DEFAULT_INTERPOLATION,
                        help="the preprocessing the reference labels are computed with (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.compare_uint8:
        text, ok = compare_uint8_path(*args.compare_uint8)
        print(text)
        return 0 if ok else 1
    if args.checkpoint:
        make_standin_checkpoint(args.checkpoint, seed=args.seed)
        print(f"wrote stand-in checkpoint {args.checkpoint} (random weights, seed {args.seed}; NOT a trained model)")
        return 0
    info = make_demo_inputs(args.make_inputs, n=args.images, seed=args.seed, interpolation=args.interpolation)
    print(f"demo inputs in {args.make_inputs}: STAND-IN checkpoint (random backbone, classifier fitted to the "
          f"samples; not a trained model), {info['images']} images, labels from torchvision + PyTorch: "
          f"{info['distinct_classes']} distinct classes, smallest top-1 margin {info['min_top1_margin']:.2f}")
    return 0


if __name__ == "__main__":
    import sys

    from .cli import run_main

    sys.exit(run_main(main))
