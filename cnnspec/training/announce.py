"""What a run prints before its first step: skipped files, the data and set-up, the freeze
plan of a transfer."""

from __future__ import annotations

from rich.markup import escape

from ..data.folder import conversion
from ..report.tables import count
from ..shapes import infer
from ..transfer import NEVER, FreezePlan
from .performance import cpu_precision_note


def announce(trainer, images, record: dict) -> None:
    """Print the run's set-up on ``trainer.console`` (paths escaped: a file named
    ``[red]x.png`` is shown as it is)."""
    console = trainer.console
    for path, reason in images.skipped:
        console.print(f"[yellow]skipped unreadable image[/] {escape(path)}: {escape(reason)}",
                      highlight=False)
    console.print(
        f"training [bold]{escape(trainer.spec.name)}[/] on {escape(images.source)}: "
        f"{record['train_images']} train / {record['val_images']} val images, "
        f"{len(images.classes)} classes, {count(trainer.cfg.epochs, 'epoch')} of "
        f"{count(record['steps_per_epoch'], 'step')}, device {trainer.device}, {record['workers']} "
        f"DataLoader worker(s), {record['threads']} thread(s), {record['precision']}"
        + (", torch.compile" if record["compile"] != "off" else "")
        + f"; run folder {escape(str(trainer.folder))}", highlight=False)
    slow = cpu_precision_note(record["precision"], trainer.device)
    if slow is not None:  # said before the first epoch: bf16 on an AVX2 CPU is 13x slower
        console.print(f"[yellow]warning[/]: {escape(slow)}", highlight=False)
    dropped = record["dropped_per_epoch"]
    if dropped:  # other images each epoch: the order is shuffled
        why = ("batch norm cannot train on a single image" if record["world_size"] == 1 else
               f"too few to share between the {record['world_size']} processes")
        console.print(f"[yellow]note[/]: each epoch leaves out its last {dropped} training "
                      f"image(s) ({why}); different ones each epoch", highlight=False)
    outputs, classes = infer(trainer.spec).output_shape[0], len(images.classes)
    if outputs > classes:  # e.g. ResNet-50's 1000-way head on 2 classes of photos
        console.print(f"[yellow]warning[/]: {escape(trainer.spec.name)} ends in {outputs} outputs "
                      f"but the data has {classes} classes: outputs {classes}..{outputs - 1} are "
                      f"never a target (predict and model.onnx's metadata use the first "
                      f"{classes}); write dense {classes} as the last layer, or classes from "
                      "data in a transfer: section", highlight=False)
    line = conversion(images.origins, trainer.spec.input)
    if line is not None:  # said once per run: 64x64 RGB photos trained as 32x32 gray
        console.print(escape(line), highlight=False)
    if record["world_size"] > 1:
        console.print(
            f"torchrun: {record['world_size']} processes ({record['backend']}), global batch "
            f"{record['global_batch']} = {record['batch_per_process']} per process"
            + (", batch norm synchronised" if record["sync_batchnorm"] else ""), highlight=False)
    if trainer.plan is not None:
        for line in transfer_lines(trainer.plan, record["transfer"]):
            console.print(escape(line), highlight=False)


def transfer_lines(plan: FreezePlan, info: dict | None) -> list[str]:
    """The freeze preview printed before training: what was loaded, what trains when."""
    lines = []
    if info is not None:
        lines.append(f"transfer: {info['loaded']} tensors loaded from {info['source']} "
                     f"(matched {info['matched']})" + (f"; {len(info['unused'])} in the file "
                                                       "unused" if info["unused"] else ""))
    if info is not None and info.get("named"):
        prep = info["preprocessing"]
        lines.append(f"  {info['named']} (SHA-256 {info['sha256'][:16]}...), trained on "
                     f"{prep['crop']}x{prep['crop']} crops of images resized to "
                     f"{prep['resize']} ({prep['interpolation']})")
    if info is not None and info.get("adapted"):
        lines.append(f"  adapted: {info['adapted']}")
    if plan.head is not None and info is not None:  # (a resumed run restores its head)
        dropped = (f", replacing the {info['categories']} categories of {info['named']}"
                   if info.get("named") and info.get("categories") else "")
        lines.append(f"  new head {plan.head}: freshly initialised{dropped}")
    groups: dict[str, list[str]] = {}
    for path, start in plan.starts.items():
        key = ("frozen" if start == NEVER else "trainable" if start == 0
               else f"frozen until epoch {int(start) + 1}")  # trains from that epoch (from 1)
        groups.setdefault(key, []).append(path)
    for key in ("frozen", *sorted(k for k in groups if k.startswith("frozen until")), "trainable"):
        if key in groups:
            lines.append(f"  {key}: {', '.join(groups[key])}")
    if plan.bias_train and any(s > 0 for s in plan.starts.values()):
        lines.append("  bias train: the frozen layers' biases train, their weights stay")
    return lines
