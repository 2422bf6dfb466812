"""How an input folder is laid out, and what kind of input it holds: one rule for every stage.

- Layout: a folder is read flat (its files are the inputs), or, when every visible entry is a
  folder, as ImageNet's validation set is kept for torchvision's `ImageFolder` and timm
  (`val/n01440764/ILSVRC2012_val_00000293.JPEG`), as class folders one level deep, whose files
  are the inputs, named `class/file`, in natural order of class then file. A folder that holds
  files and folders is read flat, as before (its folders are reported as bad inputs).
- Kind: a folder holds images or preprocessed `.bin` files, never both. A stray `.bin` among the
  JPEGs made the inference stage take the folder as a `.bin` folder and ignore every image; a
  stray JPEG among the `.bin` files was ignored the other way. `check_one_kind` refuses the mix
  in one line naming one file of each kind, wherever a folder is read (preprocessing, get_info,
  inference, streaming).
- Names: a file name that is not valid UTF-8 cannot travel through the info file, the label
  file or a result name (all UTF-8 text); `bad_name` says so, and the stages list such a file
  as a failure instead of crashing on it later.
"""

from __future__ import annotations

import os
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

from .errors import UserError
from .formats import natural_key, shown  # noqa: F401 (shown: the stages report names through it)

#: torchvision's IMG_EXTENSIONS (datasets/folder.py), the files ImageFolder takes as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
BIN_SUFFIX = ".bin"


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def is_bin_name(name: str) -> bool:
    return name.lower().endswith(BIN_SUFFIX)


def check_one_kind(folder: str, names: Iterable[str]) -> None:
    """Refuse a folder whose (visible, relative) `names` hold both images and `.bin` files."""
    image = binary = None
    for name in names:
        if image is None and is_image_name(name):
            image = name
        elif binary is None and is_bin_name(name):
            binary = name
        if image is not None and binary is not None:
            raise UserError(f"{folder}: holds both images ({os.path.join(folder, image)}) and preprocessed .bin "
                            f"files ({os.path.join(folder, binary)}); a folder holds one kind of input: move the "
                            "other kind out (preprocessing writes its .bin files to another folder)")


def bad_name(name: str) -> Optional[str]:
    """Why `name` cannot be an input's name, or None: not valid UTF-8 (it came from the file
    system with undecodable bytes, kept as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return ("its name is not valid UTF-8 (the info file, label file and result names are UTF-8 text): "
                "rename it")
    return None


def scan(folder: str, what: str = "folder") -> List[str]:
    """Every name in `folder`, in natural order; a folder that cannot be listed is one UserError."""
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in it]
    except OSError as exc:
        raise UserError(f"{folder}: cannot list {what} ({exc.strerror or exc})") from None
    names.sort(key=natural_key)
    return names


def class_folders(folder: str, names: Sequence[str], skip: Iterable[str] = ()) -> Optional[List[str]]:
    """The class folders when `folder` is laid out as class folders (every visible name but
    those in `skip` is a folder, and there is at least one), else None (read it flat)."""
    skip = set(skip)
    classes = []
    for name in names:
        if name.startswith(".") or name in skip:
            continue
        if not os.path.isdir(os.path.join(folder, name)):
            return None
        classes.append(name)
    return classes or None


class Tree(NamedTuple):
    names: List[str]  # visible inputs, relative (`file`, or `class/file`), in natural order
    hidden: List[str]  # hidden names skipped, relative
    classes: bool  # read as class folders


def tree_names(folder: str, what: str = "folder") -> Tree:
    """The visible names of a folder, flat or `class/file` (see the module's layout rule)."""
    top = scan(folder, what)
    hidden = [n for n in top if n.startswith(".")]
    classes = class_folders(folder, top)
    if classes is None:
        return Tree([n for n in top if not n.startswith(".")], hidden, False)
    names: List[str] = []
    for cls in classes:
        for name in scan(os.path.join(folder, cls), what):
            (hidden if name.startswith(".") else names).append(f"{cls}/{name}")
    return Tree(names, hidden, True)


def split_class(rel: str) -> Tuple[str, str]:
    """(`class`, `file`) of a relative name; class "" for a flat one."""
    cls, _, name = rel.rpartition("/")
    return cls, name
