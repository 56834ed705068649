"""Activation functions: the word a spec uses -> its ``torch.nn`` module. This table is the
one list: the grammar's ``act`` rule (:func:`cnnspec.language.lark_parser.grammar_text`), the IR's
``ActivationName``, the builder, ``emit`` and the editors' highlighting all read it, so a
new activation is one line here (and its row in docs/language.md)."""

from __future__ import annotations

from .calls import ModuleCall

# Not in place: inside a residual body or a branch, an in-place activation would overwrite
# the input that the shortcut or the other branches still need.
ACTIVATIONS = {
    "relu": ModuleCall("ReLU"),
    "tanh": ModuleCall("Tanh"),
    "sigmoid": ModuleCall("Sigmoid"),
    "softmax": ModuleCall("Softmax", kwargs={"dim": 1}),
    "leakyrelu": ModuleCall("LeakyReLU"),  # negative slope 0.01, PyTorch's default
    "gelu": ModuleCall("GELU"),
    "silu": ModuleCall("SiLU"),
    # min(max(0, x), 6): MobileNetV2's activation (Sandler et al. 2018, section 3.1)
    "relu6": ModuleCall("ReLU6"),
    # x * relu6(x + 3) / 6: MobileNetV3's (Howard et al. 2019, section 5.2)
    "hardswish": ModuleCall("Hardswish"),
}
