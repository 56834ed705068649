"""Lark tree -> raw nodes for the ``train:`` and ``transfer:`` sections: one short method
per grammar rule, mixed into :class:`cnnspec.language.transform.ToRaw` (which gives the span and
value helpers ``_opt``, ``_int``, ``_num``, ``_tspan``, ``_mspan``)."""

from __future__ import annotations

from lark import Token, v_args

from .raw import Opt, Raw


def simple(key: str, convert: str):
    """A transform method for ``word VALUE``: the option ``key`` with VALUE converted by the
    transformer's ``convert`` method (``_int``, ``_num``) or, for ``"string"``, unquoted."""

    def method(self, items):
        value = str(items[0])[1:-1] if convert == "string" else getattr(self, convert)(items[0])
        return self._opt(key, items[0], value)

    return method


class SectionsToRaw:
    """The train: and transfer: sections' methods of :class:`cnnspec.language.transform.ToRaw`."""

    # -- train section
    @v_args(meta=True)
    def train_section(self, meta, items):
        raw = Raw("train", self._mspan(meta))
        for item in items:
            for opt in item if isinstance(item, list) else [item]:
                raw.set(opt)
        return raw

    epochs = simple("epochs", "_int")
    batch = simple("batch", "_int")
    split = simple("split", "_num")
    seed = simple("seed", "_int")
    workers = simple("workers", "_int")
    threads = simple("threads", "_int")

    def precision(self, items):
        return self._opt("precision", items[0], str(items[0]))

    def compile(self, items):
        return self._opt("compile", items[0], str(items[0]) == "on")

    def sync_batchnorm(self, items):
        return self._opt("sync_batchnorm", items[0], str(items[0]) == "on")

    def log(self, items):  # log tensorboard
        return self._opt("tensorboard", items[0], True)

    label_smoothing = simple("label_smoothing", "_num")
    clip_grad_norm = simple("clip_grad_norm", "_num")
    warmup = simple("warmup", "_int")
    factor = simple("factor", "_num")
    min_lr = simple("min_lr", "_num")
    patience = simple("patience", "_int")
    min_delta = simple("min_delta", "_num")
    brightness = simple("brightness", "_num")
    contrast = simple("contrast", "_num")
    saturation = simple("saturation", "_num")
    hue = simple("hue", "_num")
    data = simple("data", "string")
    lr = simple("lr", "_num")
    momentum = simple("momentum", "_num")

    def optimizer(self, items):
        name = items[0]
        raw = Raw("optimizer", self._tspan(name), {"name": str(name)}, {"name": self._tspan(name)})
        for o in items[1:]:
            raw.set(o)
        return Opt("optimizer", raw, self._tspan(name))

    def weight_decay(self, items):
        value, words = items[0], items[1:]
        opts = [self._opt("weight_decay", value, self._num(value))]
        if words:
            opts.append(Opt("no_decay", tuple(str(w) for w in words), self._tspan(words[0])))
        return opts

    def nesterov(self, items):
        return self._opt("nesterov", items[0], True)

    def betas(self, items):
        return Opt("betas", (self._num(items[0]), self._num(items[1])), self._tspan(items[0]))

    @v_args(meta=True)
    def schedule(self, meta, items):
        kind = items[0]
        raw = Raw("schedule", self._mspan(meta), {"kind": str(kind)}, {"kind": self._tspan(kind)})
        rest = items[1:]
        if str(kind) == "multistep":
            ints = [t for t in rest if isinstance(t, Token)]
            raw.set(Opt("milestones", tuple(self._int(t) for t in ints), self._tspan(ints[0])))
        elif str(kind) == "plateau" and rest and isinstance(rest[0], Token):
            raw.set(self._opt("monitor", rest[0], str(rest[0])))
        milestones = [r for r in rest if isinstance(r, Raw)]
        if milestones:
            raw.fields["steps"] = milestones
        for o in rest:
            if isinstance(o, Opt):
                raw.set(o)
        return Opt("schedule", raw, self._mspan(meta))

    def milestone(self, items):
        epoch, lr = items
        span = self._tspan(epoch)
        return Raw("milestone", span, {"epoch": self._int(epoch), "lr": self._num(lr)},
                   {"epoch": span, "lr": self._tspan(lr)})

    @v_args(meta=True)
    def early_stop(self, meta, items):
        raw = Raw("early_stop", self._mspan(meta), {"monitor": str(items[0])},
                  {"monitor": self._tspan(items[0])})
        for o in items[1:]:
            raw.set(o)
        return Opt("early_stop", raw, self._mspan(meta))

    @v_args(meta=True)
    def checkpoint(self, meta, items):
        raw = Raw("checkpoint", self._mspan(meta))
        for o in items:
            raw.set(o)
        return Opt("checkpoint", raw, self._mspan(meta))

    @v_args(meta=True)
    def checkpoint_best(self, meta, items):
        return Opt("best", str(items[0]) if items else "val_accuracy", self._mspan(meta))

    @v_args(meta=True)
    def checkpoint_last(self, meta, items):
        return Opt("last", True, self._mspan(meta))

    def checkpoint_every(self, items):
        return self._opt("every", items[0], self._int(items[0]))

    @v_args(meta=True)
    def augment(self, meta, items):
        return Opt("augment", [a for group in items for a in group], self._mspan(meta))

    def augment_list(self, items):
        return list(items)

    @v_args(meta=True)
    def hflip(self, meta, items):
        return Raw("hflip", self._mspan(meta), {"kind": "hflip"})

    @v_args(meta=True)
    def vflip(self, meta, items):
        return Raw("vflip", self._mspan(meta), {"kind": "vflip"})

    @v_args(meta=True)
    def crop(self, meta, items):
        raw = Raw("crop", self._mspan(meta), {"kind": "crop", "size": self._int(items[0])},
                  {"size": self._tspan(items[0])})
        if len(items) > 1:
            raw.set(self._opt("pad", items[1], self._int(items[1])))
        return raw

    @v_args(meta=True)
    def rotate(self, meta, items):
        return Raw("rotate", self._mspan(meta), {"kind": "rotate", "degrees": self._num(items[0])},
                   {"degrees": self._tspan(items[0])})


    def _aug(self, kind: str, meta, opts=()) -> Raw:
        raw = Raw(kind, self._mspan(meta), {"kind": kind})
        for o in opts:
            raw.set(o)
        return raw

    def scale(self, items):
        return Opt("scale", (self._num(items[0]), self._num(items[1])), self._tspan(items[0]))

    @v_args(meta=True)
    def random_resized_crop(self, meta, items):
        opts = [self._opt("size", t, self._int(t)) if isinstance(t, Token) else t for t in items]
        return self._aug("random_resized_crop", meta, opts)

    @v_args(meta=True)
    def color_jitter(self, meta, items):
        return self._aug("color_jitter", meta, items)

    @v_args(meta=True)
    def random_erasing(self, meta, items):
        return self._aug("random_erasing", meta, [self._opt("p", items[0], self._num(items[0])),
                                                   *items[1:]])

    @v_args(meta=True)
    def mixup(self, meta, items):
        return self._aug("mixup", meta, [self._opt("alpha", items[0], self._num(items[0]))])

    @v_args(meta=True)
    def cutmix(self, meta, items):
        return self._aug("cutmix", meta, [self._opt("alpha", items[0], self._num(items[0]))])

    @v_args(meta=True)
    def normalize(self, meta, items):
        raw = self._aug("normalize", meta)
        if len(items) == 1:  # imagenet
            raw.set(self._opt("preset", items[0], str(items[0])))
        elif not items:  # said explicitly: computed on this run's training images
            raw.set(Opt("preset", "computed", self._mspan(meta)))
        for o in items[1:] if len(items) == 1 else items:
            raw.set(o)
        return raw

    def norm_mean(self, items):
        return Opt("mean", tuple(self._num(t) for t in items), self._tspan(items[0]))

    def norm_std(self, items):
        return Opt("std", tuple(self._num(t) for t in items), self._tspan(items[0]))

    # -- transfer section
    @v_args(meta=True)
    def transfer_section(self, meta, items):
        raw = Raw("transfer", self._mspan(meta))
        items = [o for item in items for o in (item if isinstance(item, list) else [item])]
        unfreeze = [o for o in items if o.key == "unfreeze"]
        for o in items:
            if o.key != "unfreeze":
                raw.set(o)
        raw.fields["unfreeze"] = [o.value for o in unfreeze]
        return raw

    @v_args(meta=True)
    def transfer_from(self, meta, items):
        return self._opt("source", items[0], str(items[0])[1:-1])

    @v_args(meta=True)
    def freeze_up_to(self, meta, items):
        return Opt("freeze", Raw("freeze", self._mspan(meta), {
            "mode": "up_to", "layer": str(items[0]), "name_spans": self._name_spans(items)}),
            self._mspan(meta))

    def _name_spans(self, tokens) -> dict:
        """Where each layer name of a transfer statement is written (for carets)."""
        return {str(t): self._tspan(t) for t in tokens}

    @v_args(meta=True)
    def freeze_all(self, meta, items):
        return Opt("freeze", Raw("freeze", self._mspan(meta), {
            "mode": "all_except", "keep": [str(t) for t in items],
            "name_spans": self._name_spans(items)}), self._mspan(meta))

    @v_args(meta=True)
    def train_last(self, meta, items):
        raw = Raw("freeze", self._mspan(meta), {"mode": "last_conv", "convs": self._int(items[0])},
                  {"convs": self._tspan(items[0])})
        return Opt("freeze", raw, self._mspan(meta))

    @v_args(meta=True)
    def unfreeze(self, meta, items):
        *names, epoch = items
        raw = Raw("unfreeze", self._mspan(meta), {"layers": [str(t) for t in names],
                                                   "epoch": self._int(epoch),
                                                   "name_spans": self._name_spans(names)},
                  {"epoch": self._tspan(epoch)})
        return Opt("unfreeze", raw, self._mspan(meta))

    @v_args(meta=True)
    def classes(self, meta, items):
        if items:
            return self._opt("classes", items[0], self._int(items[0]))
        return Opt("classes", "data", self._mspan(meta))

    @v_args(meta=True)
    def bn_train(self, meta, items):
        return Opt("bn_train", True, self._mspan(meta))

    @v_args(meta=True)
    def bias_train(self, meta, items):
        return Opt("bias_train", True, self._mspan(meta))

    def lr_split(self, items):
        return [self._opt("lr_backbone", items[0], self._num(items[0])),
                self._opt("lr_head", items[1], self._num(items[1]))]
