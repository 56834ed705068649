"""The front end: spec text to the IR.

``parser`` (with ``lark_parser``, the cached LALR parser, and ``syntax_errors``) turns text
into a Lark tree; ``transform`` (the layer kinds through :mod:`cnnspec.layers`, the
``train:`` and ``transfer:`` settings through :mod:`cnnspec.settings`) into raw nodes
(``raw``); ``expand`` unrolls blocks, repeats and includes (``expressions`` works out
``{4 * width}``); ``validate`` makes the IR (:mod:`cnnspec.ir`) with every mistake at its
span; ``names`` names the layers; ``loader`` is all of it as one call (``load``,
``loads``). Beside them: ``fmt`` (the canonical layout), ``lexer`` (Pygments, the editors'
TextMate grammar) and ``templates`` (``cnnspec new``).
"""
