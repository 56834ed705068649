"""Raw ``train:`` and ``transfer:`` sections -> :class:`~cnnspec.ir.TrainConfig` and
:class:`~cnnspec.ir.Transfer`, every problem at its span: the section methods of
:class:`cnnspec.language.validate.Validator` (a mixin; ``error``, ``error_at`` and ``model`` are
the validator's)."""

from __future__ import annotations

import itertools
from dataclasses import replace

from .. import ir
from .raw import Raw

# Settings each optimizer takes besides lr (PyTorch's torch.optim signatures).
OPTIMIZER_OPTIONS: dict[str, set[str]] = {
    "sgd": {"momentum", "nesterov"},
    "adam": {"betas", "eps"},
    "adamw": {"betas", "eps"},
    "rmsprop": {"momentum", "alpha", "eps"},
}

# Settings each schedule takes (see cnnspec.schedule).
SCHEDULE_OPTIONS: dict[str, set[str]] = {
    "step": {"warmup"},
    "multistep": {"milestones", "factor", "warmup"},
    "cosine": {"min_lr", "warmup"},
    "onecycle": {"warmup"},
    "plateau": {"monitor", "factor", "patience", "min_lr", "warmup"},
}


class SectionsValidator:
    """The train: and transfer: sections' checks of :class:`cnnspec.language.validate.Validator`."""

    # -- train section
    def train(self, raw: Raw) -> ir.TrainConfig | None:
        f = dict(raw.fields)
        for dup in raw.duplicates:  # reported here, as each is removed from the fields below
            self.error(dup.span, f"train: {dup.key} is given twice", "keep one of them", raw.trace)
        raw = replace(raw, duplicates=[])
        failed: set[str] = set()
        if "optimizer" in f:
            f["optimizer"] = self.optimizer(f["optimizer"])
        if "schedule" in f:
            f["schedule"] = self.schedule(f["schedule"], f.get("epochs"))
        if "early_stop" in f:
            f["early_stop"] = self.model(ir.EarlyStop, f["early_stop"], f["early_stop"].fields,
                                         "early stop")
        if "checkpoint" in f:
            ck = f["checkpoint"]
            fields = {k: v for k, v in ck.fields.items() if k != "last"}
            if "last" in ck.fields and "best" in fields:
                self.error_at(ck, ck.spans["last"], "checkpoint: 'last' keeps no best weights; "
                              "it cannot go with 'best'", "keep one of them")
            f["checkpoint"] = self.model(ir.Checkpoint, ck, fields, "checkpoint")
            if f["checkpoint"] is not None and "last" in ck.fields:
                f["checkpoint"] = f["checkpoint"].model_copy(update={"best": None})
        if "no_decay" in f:
            words = f["no_decay"]
            if len(set(words)) < len(words):
                self.error(raw.spans["no_decay"], "weight_decay: a word after 'except' is repeated",
                           "write except bias, batchnorm")
            f["no_decay"] = sorted(set(words))
        if "augment" in f:
            norms = [a for a in f["augment"] if a.kind == "normalize"]
            for extra in norms[1:]:
                self.error(extra.span, "augment: normalize is given twice", "keep one of them")
                failed.add("normalize")
            if norms:
                f["normalize"] = self.model(ir.Normalize, norms[0], {
                    k: v for k, v in norms[0].fields.items() if k != "kind"}, "normalize")
            f["augment"] = [self.augmentation(a) for a in f["augment"] if a.kind != "normalize"]
        failed |= {k for k, v in f.items() if v is None or (isinstance(v, list) and None in v)}
        # Check the rest too, so that one mistake does not hide another.
        config = self.model(ir.TrainConfig, raw, {k: v for k, v in f.items() if k not in failed},
                            "train")
        return None if failed else config

    def optimizer(self, raw: Raw) -> ir.Optimizer | None:
        name, fields = raw.fields["name"], raw.fields
        ok = True
        for key in fields:
            if key not in ("name", "lr") and key not in OPTIMIZER_OPTIONS[name]:
                users = [n for n, opts in OPTIMIZER_OPTIONS.items() if key in opts]
                self.error_at(raw, raw.spans[key], f"optimizer {name}: {key} is not a setting of "
                              f"{name}", f"remove it, or use optimizer {' or '.join(users)}")
                ok = False
        if fields.get("nesterov") and not fields.get("momentum"):
            self.error_at(raw, raw.spans["nesterov"], "optimizer sgd: nesterov needs momentum",
                          "write momentum 0.9 nesterov")
            ok = False
        opt = self.model(ir.Optimizer, raw, fields, "optimizer")
        return opt if ok else None

    def schedule(self, raw: Raw, epochs) -> ir.Schedule | None:
        f = dict(raw.fields)
        kind = f["kind"]
        ok = True
        for key in f:
            if key not in ("kind", "steps") and key not in SCHEDULE_OPTIONS[kind]:
                users = [k for k, opts in SCHEDULE_OPTIONS.items() if key in opts]
                self.error_at(raw, raw.spans[key], f"schedule {kind}: {key} is not a setting of "
                              f"this schedule", f"{key} belongs to schedule {' or '.join(users)}"
                              if users else "remove it")
                ok = False
        if "steps" in f:
            f["steps"] = self.milestones(f["steps"])
            if None in f["steps"]:
                return None  # a bad line: already reported
        order = f.get("milestones") or ()
        for before, after in itertools.pairwise(order):
            if None not in (before, after) and after <= before:
                self.error_at(raw, raw.spans["milestones"], f"schedule multistep: epochs must "
                              f"increase, got {after} after {before}", "list them in order")
                ok = False
                break
        warmup = f.get("warmup")
        if epochs is None:  # not written: the default
            epochs = ir.TrainConfig.model_fields["epochs"].default
        if isinstance(warmup, int) and isinstance(epochs, int) and 0 < epochs <= warmup:
            self.error_at(raw, raw.spans["warmup"], f"schedule {kind}: warmup {warmup} is not "
                          f"shorter than the run ({epochs} epochs)", "warm up for a few epochs, "
                          "e.g. warmup 5 of 100")
            ok = False
        if "milestones" in f:
            f["milestones"] = list(order)
        model = self.model(ir.Schedule, raw, f, f"schedule {kind}")
        return model if ok else None

    def milestones(self, milestones: list[Raw]) -> list[ir.Milestone | None]:
        out = [self.model(ir.Milestone, m, m.fields, "schedule") for m in milestones]
        last = None
        for m in milestones:
            epoch = m.fields["epoch"]
            if last is not None and epoch is not None and epoch <= last:
                self.error(m.spans["epoch"], f"schedule: epochs must increase, got {epoch} "
                           f"after {last}", "each line reads 'from this epoch on, this learning "
                           "rate'; list them in order")
            last = epoch
        return out

    def augmentation(self, raw: Raw) -> ir.Augmentation | None:
        scale = raw.fields.get("scale")
        if scale and None not in scale and scale[0] > scale[1]:
            self.error_at(raw, raw.spans["scale"], f"{raw.kind}: scale {scale[0]:g} {scale[1]:g} "
                          "must go from the smaller to the larger fraction",
                          f"write scale {scale[1]:g} {scale[0]:g}")
            return None
        return self.model(ir.Augmentation, raw, raw.fields, raw.kind)


    # -- transfer section
    def transfer(self, raw: Raw) -> ir.Transfer | None:
        f = dict(raw.fields)
        for dup in raw.duplicates:
            if dup.key == "freeze":
                self.error(dup.span, "transfer: freeze, train last or freeze all is given twice",
                           "one freeze rule per transfer section; use unfreeze for later epochs")
            else:
                name = {"source": "from", "lr_backbone": "lr backbone", "bn_train": "bn train",
                        "bias_train": "bias train"}
                self.error(dup.span, f"transfer: {name.get(dup.key, dup.key)} is given twice",
                           "keep one of them")
        raw = replace(raw, duplicates=[])
        if "source" not in f:
            self.error(raw.span, "transfer: where do the weights come from?",
                       'add a line such as: from "runs/LeNet5"  (a run folder, .safetensors '
                       "or .pth file)")
            return None
        if isinstance(f.get("classes"), int) and f["classes"] < 2:
            self.error(raw.spans["classes"], f"transfer: classes {f['classes']}: a classifier "
                       "needs at least 2 classes", "write the number of classes of your data, "
                       "or classes from data")
            return None
        for key, what in (("bn_train", ("bn train keeps the batch-norm statistics of frozen "
                           "layers updating")), ("bias_train", ("bias train keeps the biases of "
                                                "frozen layers training"))):
            if key in f and "freeze" not in f:
                self.error(raw.spans[key], f"transfer: {what}, but no layer is frozen",
                           "add a freeze rule (freeze up to L, freeze all except L, train last "
                           "N conv), or remove this line")
                return None
        f["setting_spans"] = dict(raw.spans)
        if "freeze" in f:
            f["freeze"] = self.model(ir.Freeze, f["freeze"], f["freeze"].fields, "freeze")
        f["unfreeze"] = [self.model(ir.Unfreeze, u, u.fields, "unfreeze") for u in f["unfreeze"]]
        if ("lr_backbone" in f) and f.get("classes") is None:
            self.error(raw.spans["lr_backbone"], "transfer: lr backbone ... head ... needs a new "
                       "head", "add classes N or classes from data")
            return None
        if None in f["unfreeze"] or f.get("freeze", 0) is None:
            return None
        return self.model(ir.Transfer, raw, f, "transfer")
