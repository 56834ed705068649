"""``cnnspec data DIR``: what an image folder holds, before any spec is involved (Pillow only)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .folder import UNREADABLE as _UNREADABLE
from .folder import check_folder as _check_folder
from .folder import class_dirs as _class_dirs
from .folder import image_files as _image_files
from .folder import loose_images as _loose_images


def data_report(root: str | Path, min_classes: int = 0, min_per_class: int = 0) -> dict:
    """What an image folder holds, without decoding it at a spec's size: classes with image
    counts, sizes (W x H) and modes, unreadable files, exact duplicates (same bytes), and
    whether it meets a minimum (the course's rule: 3 classes x 250 images).

    Raises:
        DataError: ``root`` is not a folder.
    """
    import hashlib
    import warnings as warnings_module
    from collections import Counter

    _check_folder(root)
    root = Path(root)
    classes, unreadable, seen, duplicates, large = [], [], {}, [], []
    for d in _class_dirs(root):
        files = _image_files(d)
        sizes, modes, ok = Counter(), Counter(), 0
        for p in files:
            if not p.is_file():  # a FIFO would block, a device never end: never opened
                unreadable.append({"path": str(p), "reason": "not a regular file"})
                continue
            try:
                digest = hashlib.sha1(p.read_bytes()).hexdigest()
            except OSError as exc:  # no permission, an I/O error: named, and the report goes on
                unreadable.append({"path": str(p), "reason": exc.strerror or str(exc)})
                continue
            if digest in seen:
                duplicates.append([str(seen[digest]), str(p)])
            else:
                seen[digest] = p
            try:
                with warnings_module.catch_warnings(record=True) as caught:
                    warnings_module.simplefilter("always", Image.DecompressionBombWarning)
                    with Image.open(p) as im:
                        im.verify()
                    with Image.open(p) as im:
                        im.load()
                        sizes[f"{im.width}x{im.height}"] += 1
                        modes[im.mode] += 1
                if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
                    large.append(f"{p}: {im.width}x{im.height} ({im.width * im.height / 1e6:,.0f} "
                                 "M pixels), over Pillow's decompression-bomb warning limit: "
                                 "read, but is it the file you mean?")
                ok += 1
            except _UNREADABLE as exc:
                unreadable.append({"path": str(p), "reason": str(exc).splitlines()[0]})
        classes.append({"name": d.name, "images": ok, "files": len(files),
                        "sizes": dict(sizes.most_common(5)), "other_sizes": len(sizes) - 5
                        if len(sizes) > 5 else 0, "modes": dict(modes)})
    problems, warnings = [], list(large)
    loose = _loose_images(root)
    if not classes:
        problems.append(f"no class folders{f' ({loose} image(s) lie directly in the folder)' if loose else ''}"
                        ": images must be in class subfolders: DIR/<class>/<image>")
    elif loose:
        warnings.append(f"{loose} image(s) lie directly in {root}, outside any class folder, "
                        "and are not used: images must be in class subfolders")
    if len(classes) < min_classes:
        problems.append(f"{len(classes)} classes, fewer than the {min_classes} asked for")
    problems += [f"class {c['name']}: {c['images']} readable images, fewer than {min_per_class}"
                 for c in classes if c["images"] < min_per_class]
    return {"root": str(root), "classes": classes, "unreadable": unreadable,
            "duplicates": duplicates, "total_images": sum(c["images"] for c in classes),
            "minimum": {"classes": min_classes, "per_class": min_per_class},
            "meets_minimum": not problems, "problems": problems, "warnings": warnings}
