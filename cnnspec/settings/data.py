"""``data "PATH"``: the image folder a run trains on."""

from __future__ import annotations

from .base import IRField, Override, Setting, simple_transform

SETTINGS = (
    Setting(
        "train", ("data",), 'data: "data" STRING _NL', (IRField("data", str | None, None),),
        (('`data "PATH"`', "image folder, relative to the spec file (`--data` overrides it)",
          "the 5,000 embedded MNIST digits"),),
        "string", {"data": simple_transform("data", "string")},
        overrides=(Override("data", ("data",), "path", "Image folder DIR/<class>/<image> "
                            "(default: the spec's train: data, else the embedded digits)."),)),
)
