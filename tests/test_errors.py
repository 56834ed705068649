"""cnnspec/errors.py and the front end: a catalogue of malformed specs and the diagnostics they must produce.

Each case is a real file under ``tests/testdata/errors/NAME.cnn`` (line 1 of each is a
comment saying what is wrong), read from disk with :func:`cnnspec.load`. The table gives,
for the first diagnostic, the line and column of the caret, a piece of the one-line
message and, where it matters, a piece of the hint (a did-you-mean, what was expected).
Every value was checked by hand against the file: the caret sits on the offending word,
number or line end, and the message names the mistake. A mistake inside a block is shown at
its line in the block, with notes naming the calls that led there (see NOTES); one inside an
included file is shown in that file (see IN_OTHER_FILE; such files live in a folder beside
the case, so that they are not cases themselves).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import cnnspec
from cnnspec import SpecError

ERRORS = Path(__file__).parent / "testdata" / "errors"

# name, line, col, message substring, hint substring (None: not checked)
CASES: list[tuple[str, int, int, str, str | None]] = [
    # -- misspelt words: did-you-mean
    ("unknown_layer_convv", 5, 1, "unknown word 'convv'", "did you mean 'conv'?"),
    ("unknown_layer_maxpol", 5, 1, "unknown word 'maxpol'", "did you mean 'maxpool'?"),
    ("unknown_layer_dens", 6, 1, "unknown word 'dens'", "did you mean 'dense'?"),
    ("unknown_activation", 4, 13, "unexpected 'rellu'", "did you mean 'relu'?"),
    ("unknown_activation_layer", 5, 1, "unknown word 'sigmod'", "did you mean 'sigmoid'?"),
    ("unknown_optimizer", 9, 15, "unexpected 'sgdd'", "did you mean 'sgd'? (expected 'adam', 'adamw', 'rmsprop', 'sgd')"),
    ("unknown_train_key", 9, 5, "unknown word 'bacth'", "did you mean 'batch'?"),
    ("unknown_train_key_far", 8, 5, "unknown word 'learning_rate'", "expected 'augment', 'batch'"),
    # -- shapes
    ("kernel_larger_than_input", 4, 1,
     "C1: conv 5x5 on a 4x4x1 input; the kernel is larger than the input", "smaller kernel"),
    ("pool_window_larger_than_input", 5, 1,
     "M1: maxpool 7x7 on a 6x6x8 input; the window is larger than the input", None),
    ("size_shrinks_to_zero", 8, 1,
     "M4: maxpool 2x2 on a 1x1x8 input; the window is larger than the input",
     "remove a pooling layer"),
    ("dense_on_feature_map", 6, 1, "F1: dense needs a flat input, got 14x14x6", "add 'flatten'"),
    ("conv_after_flatten", 6, 1, "C2: conv needs an HxWxC input, got a flat input of 6272",
     "move this layer before it"),
    ("pad_same_even_kernel_stride2", 4, 1,
     "C1: pad same with an even 4x4 kernel needs stride 1, got stride 2", "pad N"),
    ("pool_padding_too_large", 5, 1, "M1: pad 2 is more than half the maxpool window", None),
    # -- values out of range
    ("dropout_one", 6, 9, "dropout: the dropout probability must be less than 1.0, got 1.0",
     "[0, 1)"),
    ("dropout_above_one", 6, 9, "dropout: the dropout probability must be less than 1.0, got 1.5",
     "[0, 1)"),
    ("conv_zero_filters", 4, 6, "conv: the number of filters must be greater than 0, got 0",
     "F >= 1"),
    ("input_zero_height", 3, 7, "input: the input height must be greater than 0, got 0", None),
    ("dense_zero", 5, 7, "dense: the number of units must be greater than 0, got 0", "N >= 1"),
    ("maxpool_zero", 4, 9, "maxpool: the kernel size must be greater than 0, got 0", None),
    ("stride_zero", 4, 19, "conv: the stride must be greater than 0, got 0", None),
    ("lr_zero", 8, 22, "optimizer: the learning rate must be greater than 0.0, got 0.0", None),
    ("lr_negative", 8, 23, "unexpected '-0.001'", "numbers cannot be negative here"),
    ("momentum_one", 8, 35, "optimizer: the momentum must be less than 1.0, got 1.0", "[0, 1)"),
    ("split_above_one", 9, 11, "train: the split must be less than 1.0, got 1.5", "split 0.8"),
    ("pool_pad_same", 5, 24, "maxpool: the padding must be a number of pixels, got pad same",
     "write pad 0 or pad 1"),
    # -- schedule
    ("schedule_decreasing", 11, 9, "schedule: epochs must increase, got 10 after 20", "in order"),
    ("schedule_equal", 11, 9, "schedule: epochs must increase, got 10 after 10", "in order"),
    ("schedule_missing_colon", 10, 12, "unexpected '0.01'", "expected ':'"),
    # -- given twice, or missing
    ("duplicate_stride", 4, 33, "conv: stride is given twice", "keep one of them"),
    ("duplicate_input", 4, 1, "'input' is given twice (first at line 3)", None),
    ("duplicate_network", 4, 1, "'network' is given twice (first at line 2)", None),
    ("duplicate_train", 10, 1, "'train' is given twice (first at line 7)", None),
    ("missing_input", 3, 1, "the spec has no 'input' line", "input 32x32x1"),
    ("empty", 1, 1, "the spec is empty", "'input 28x28x1'"),
    ("comments_only", 1, 1, "the spec is empty", None),
    # -- sizes with the wrong number of parts
    ("input_two_dims", 3, 7, "input needs HxWxC (height x width x channels), got 28x28",
     "input 28x28x1"),
    ("input_four_dims", 3, 7, "input needs HxWxC (height x width x channels), got 28x28x1x1",
     "input 28x28x1"),
    ("conv_two_dims", 4, 6, "conv needs KxKxF (kernel height x width x filters), got 3x3",
     "conv 3x3x64"),
    ("transition_3x3", 5, 12, "a transition is a 1x1 convolution, got a 3x3 kernel",
     "transition 1x1x32, or conv 3x3x32"),
    # -- syntax: lines, blocks, indentation
    ("stride_missing_number", 4, 18, "line ends too early", "expected a whole number"),
    ("stride_then_word", 4, 19, "unexpected 'relu'", "expected a whole number"),
    ("train_missing_colon", 7, 6, "line ends too early", "expected ':'"),
    ("unexpected_indentation", 5, 1, "unexpected indentation", "only a line ending in ':'"),
    ("inconsistent_dedent", 9, 1, "inconsistent indentation", "indented by 4"),
    ("train_empty_block", 7, 7, "nothing is indented under this line", "'epochs'"),
    ("train_empty_block_then_layer", 5, 7, "nothing is indented under this line", "'epochs'"),
    ("schedule_empty_block", 9, 19, "nothing is indented under this line", "a whole number"),
    ("schedule_empty_block_at_end", 9, 19, "nothing is indented under this line", None),
    # -- names and labels
    ("duplicate_label", 5, 1, "the name 'stem' is used twice (first at line 4)", None),
    ("label_clashes_with_auto_name", 4, 1,
     "the label 'C2' clashes with the automatic name of another layer (line 5)", None),
    ("keyword_as_label", 4, 15, "unexpected 'relu'", "'relu' is a keyword"),
    ("number_for_name", 2, 9, "unexpected '5'", "expected a name"),
    ("number_at_line_start", 4, 1, "unexpected '3'", "'conv'"),
    # -- characters no token takes
    ("bad_character", 4, 12, "unexpected '@'", "expected 'as', 'bias'"),
    # -- several mistakes: the first is at the top of the list (see test_several_errors)
    ("several_errors", 4, 19, "conv: the stride must be greater than 0, got 0", None),
    # -- blocks: names, calls, arguments
    ("block_unknown_name", 13, 1, "unknown block 'stag'", "did you mean 'stage'?"),
    ("block_misspelt_layer", 7, 5, "unknown word 'maxpol'", "did you mean 'maxpool'?"),
    ("block_call_without_brackets", 9, 1, "'stage' is a block: a call needs brackets",
     "write stage(...)"),
    ("block_too_many_args", 9, 13, "stage() takes 2 argument(s), got 3",
     "its parameters: filters, convs"),
    ("block_unknown_keyword", 9, 10, "stage() has no parameter 'cnvs'", "did you mean 'convs'?"),
    ("block_missing_arg", 9, 1, "stage() needs a value for 'convs'",
     "call it as stage(filters, convs)"),
    ("block_arg_twice", 9, 10, "parameter 'filters' is given twice", None),
    ("block_defined_twice", 8, 7, "block 'stage' is defined twice (first at", "another name"),
    ("block_parameter_twice", 5, 22, "block 'stage' has two parameters called 'filters'", None),
    ("block_default_uses_parameter", 5, 28, "unknown parameter 'filters'",
     "a default is a number; it cannot use other parameters"),
    ("block_calls_itself", 7, 5, "block 'stage' calls itself", "use repeat N:"),
    ("block_calls_itself_indirectly", 11, 5,
     "block 'down' calls itself through another block: down -> up -> down", None),
    ("block_inside_block", 6, 5, "'block' cannot go here", "at the top level"),
    ("block_body_value_out_of_range", 7, 13,
     "dropout: the dropout probability must be less than 1.0, got 1.5", "[0, 1)"),
    # -- parameters and expressions in {}
    ("param_unknown", 6, 28, "unknown parameter 'filter'", "did you mean 'filters'?"),
    ("param_outside_block", 5, 10, "unknown parameter 'filters'",
     "parameters exist only inside a block"),
    ("param_in_input", 3, 7, "unknown parameter 'size'", "parameters exist only inside a block"),
    ("param_bad_expression", 6, 14, "'{filters +}' is not an expression", "{2 * filters}"),
    ("param_divide_by_zero", 6, 14, "'{filters // (groups - 1)}' divides by zero",
     "here filters = 8, groups = 1"),
    ("param_fractional_size", 6, 14,
     "conv: the number of filters must be a whole number, got 21.3333", "'//' divides"),
    # -- repeat
    ("repeat_zero", 5, 8, "repeat needs a whole number of at least 1, got 0", "delete the repeat"),
    ("repeat_param_zero", 6, 12, "repeat needs a whole number of at least 1, got 0", None),
    ("repeat_inline_call", 8, 19, "unit() takes 1 argument(s), got 2", "its parameters: filters"),
    ("repeat_inline_misspelt", 5, 11, "unknown word 'convv'", "did you mean 'conv'?"),
    ("repeat_too_many", 5, 8, "repeat 1000 unrolls to 1000000 layers; a spec may have at most",
     None),
    # -- concat and residual
    ("concat_size_mismatch", 6, 1,
     "CAT1: concat: branch 1 (line 8) gives 28x28x8 but branch 2 (line 10) gives 26x26x8",
     "same strides and padding"),
    ("concat_flat_branch", 6, 1,
     "CAT1: concat: branch 1 (identity) gives 28x28x8 but branch 2 (line 10) gives 16",
     "flatten after the concat"),
    ("branch_outside_concat", 6, 1, "'branch' cannot go here", "inside 'concat:'"),
    ("residual_shortcut_shape", 6, 1, ("R1: residual: the body gives 14x14x16 (line 8) but the "
     "shortcut gives 28x28x16 (line 10)"), "same size and channels"),
    ("residual_no_projection", 6, 1, ("R1: residual: the body turns 28x28x8 into 26x26x8 (line 8); "
     "no 1x1 projection of the input can match it"), None),
    ("residual_shortcut_without_body", 7, 5, "'shortcut' cannot go here",
     "after the body (at least one layer)"),
    ("residual_body_call_fails", 10, 5, "unit() needs a value for 'filters'", None),
    # -- include (a mistake inside an included file is shown there: see IN_OTHER_FILE)
    ("include_missing", 3, 9, "included file not found", "relative to the file that includes"),
    ("include_folder", 3, 9, "the included path is a folder", "include a .cnn file"),
    ("include_cycle", 2, 9, "include cycle: a.cnn -> b.cnn -> a.cnn", None),
    ("include_has_layer", 6, 1, "an included file may only define blocks, found 'conv'", None),
    # -- options of the newer layers
    ("conv_groups_not_dividing", 6, 1,
     "C2: groups 3 must divide both the input channels (8) and the filters (12)", None),
    ("conv_dilation_zero", 5, 21, "conv: the dilation must be greater than 0, got 0", None),
    ("lrn_zero", 6, 5, "lrn: the number of channels must be greater than 0, got 0", "lrn 5"),
    ("batchnorm_eps_zero", 6, 15, "batchnorm: eps must be greater than 0.0, got 0.0", "1e-5"),
    # -- labels that would clash inside the built module
    ("label_forward", 5, 1, "the label 'forward' is reserved by PyTorch's nn.Module", None),
    ("label_activation_child", 6, 1,
     "the label 'C1_relu' is the name of the activation after line 5's layer", None),
    ("label_shortcut_in_residual", 8, 19, "unexpected 'shortcut'",
     "'shortcut' is a keyword and cannot be used as a name"),
    ("concat_label_clash", 6, 1, "the name 'mixed' is used twice (first at line 5)", None),
    ("label_in_block_called_twice", 6, 5, "the name 'stem' is used twice (first at line 6)",
     "the same name at every call"),
    # -- several mistakes inside blocks (see test_several_block_errors)
    ("several_block_errors", 6, 31, "conv: the stride must be greater than 0, got 0", None),
]

# Cases whose first diagnostic points into an included file, not into NAME.cnn itself.
IN_OTHER_FILE = {
    "include_cycle": "include_cycle/b.cnn",
    "include_has_layer": "include_has_layer/blocks.cnn",
}


def _load_error(name: str) -> tuple[Path, SpecError]:
    path = ERRORS / f"{name}.cnn"
    with pytest.raises(SpecError) as info:  # any other exception fails the test
        cnnspec.load(path)
    return path, info.value


def test_catalogue_is_complete():
    """Every file has a row and every row a file, so that no case goes unchecked."""
    on_disk = sorted(p.stem for p in ERRORS.glob("*.cnn"))
    in_table = sorted(name for name, *_ in CASES)
    assert on_disk == in_table
    assert len(CASES) >= 30


@pytest.mark.parametrize(("name", "line", "col", "message", "hint"), CASES,
                         ids=[c[0] for c in CASES])
def test_error(name, line, col, message, hint):
    path, err = _load_error(name)
    first = err.diagnostics[0]
    assert first.span is not None
    where = str((ERRORS / IN_OTHER_FILE[name]).resolve()) if name in IN_OTHER_FILE else str(path)
    assert (first.span.file, first.span.line, first.span.col) == (where, line, col)
    assert message in first.message
    if hint is not None:
        assert first.hint is not None and hint in first.hint
    # Every diagnostic shows the line it points into, and no mistake is reported twice.
    for d in err.diagnostics:
        assert d.span is not None
        lines = Path(d.span.file).read_text(encoding="utf-8").splitlines() or [""]
        assert d.source_line == lines[d.span.line - 1]
        assert 1 <= d.span.col <= len(d.source_line) + 1
    keys = [(d.span, d.message) for d in err.diagnostics]
    assert len(keys) == len(set(keys))


def test_several_errors():
    """Independent mistakes in one file are all reported, in the order of the file."""
    _, err = _load_error("several_errors")
    got = [(d.span.line, d.span.col, d.message) for d in err.diagnostics]
    assert got == [
        (4, 19, "conv: the stride must be greater than 0, got 0"),
        (6, 9, "dropout: the dropout probability must be less than 1.0, got 1.5"),
        (7, 7, "dense: the number of units must be greater than 0, got 0"),
        (8, 9, "dropout: the dropout probability must be less than 1.0, got 2.0"),
        (12, 35, "optimizer: the momentum must be less than 1.0, got 1.0"),
    ]


@pytest.mark.parametrize("name", ["maxpool_zero", "label_clashes_with_auto_name",
                                  "param_unknown", "repeat_inline_call", "residual_body_call_fails",
                                  "block_unknown_name", "block_default_uses_parameter",
                                  "lr_negative", "schedule_missing_colon",
                                  "unknown_train_key_far"])
def test_one_mistake_one_diagnostic(name):
    """``maxpool 0`` is 0x0 but one mistake; a syntax error on the only line of a block
    does not also report the block as empty; a clashing label is not also 'used twice'; a
    mistake in a repeated body is reported once, not once per copy; a call that fails leaves
    no empty residual body, no 'spec has no layers', and no error at every later call."""
    _, err = _load_error(name)
    assert len(err.diagnostics) == 1


# name, the notes of the first diagnostic: where the block holding the mistake was called
# from, innermost call first ("in a block called at FILE:LINE:COL: the call").
NOTES: list[tuple[str, list[str]]] = [
    ("block_body_value_out_of_range", ["block_body_value_out_of_range.cnn:11:1: head(1.5)"]),
    ("param_unknown", ["param_unknown.cnn:9:1: stage(8)"]),
    ("repeat_param_zero", ["repeat_param_zero.cnn:10:1: stage(16, convs=0)"]),
    ("block_calls_itself_indirectly", ["block_calls_itself_indirectly.cnn:7:5: up(filters)",
                                       "block_calls_itself_indirectly.cnn:13:1: down(8)"]),
    ("label_in_block_called_twice", ["label_in_block_called_twice.cnn:10:1: stage(16)"]),
    ("repeat_zero", []),
]


@pytest.mark.parametrize(("name", "line", "col", "width"), [
    ("unknown_layer_convv", 5, 1, 5),
    ("dropout_above_one", 6, 9, 3),
    ("unknown_optimizer", 9, 15, 4),
    ("stride_missing_number", 4, 18, 1),
    ("param_fractional_size", 6, 14, 13),
    ("repeat_inline_misspelt", 5, 11, 5),
    ("block_defined_twice", 8, 7, 5),
])
def test_rendering(name, line, col, width):
    """``str(err)`` is what the CLI prints: FILE:LINE:COL: error: MESSAGE, the source line
    indented by 4, a caret under the spot, then the hint."""
    path, err = _load_error(name)
    first = err.diagnostics[0]
    source = path.read_text(encoding="utf-8").splitlines()[line - 1]
    out = str(err).split("\n")
    assert out[0] == f"{path}:{line}:{col}: error: {first.message}"
    assert out[1] == "    " + source
    assert out[2] == "    " + " " * (col - 1) + "^" * width
    assert out[3] == f"hint: {first.hint}"
    assert str(err) == err.render()


def test_rendering_separates_diagnostics():
    """Several diagnostics render one after another, separated by a blank line."""
    path, err = _load_error("several_errors")
    blocks = str(err).split("\n\n")
    assert len(blocks) == len(err.diagnostics)
    for block, d in zip(blocks, err.diagnostics):
        assert block.splitlines()[0] == f"{path}:{d.span.line}:{d.span.col}: error: {d.message}"


@pytest.mark.parametrize("line, what", [("conv 3x3x9999999999999 relu", "parameters"),
                                        ("conv 3x3x99999999 relu", "output values per image")])
def test_sizes_no_machine_can_hold_are_check_errors(line, what):
    """They passed check and ended in an allocation error or OverflowError in compile."""
    with pytest.raises(cnnspec.SpecError) as info:
        cnnspec.loads(f"network T\ninput 28x28x1\n{line}\nflatten\ndense 10\n", "t.cnn")
    text = info.value.render()
    assert "t.cnn:3:1: error: C1: " in text and f" {what} (" in text
    assert "is more than a layer may have (17,179,869,184, 64 GiB)" in text
