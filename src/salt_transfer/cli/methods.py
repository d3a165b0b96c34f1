"""salt-transfer methods: the registered transfer methods, their options and papers."""

NAME = "methods"
HELP = "list registered transfer methods, their options and papers"


def add_arguments(p) -> None:
    p.add_argument(
        "--docs",
        dest="verbose_docs",
        action="store_true",
        help="also print each method's documentation (what it does, where it departs from the paper)",
    )


def run(args) -> None:
    import dataclasses
    import textwrap

    from ..catalog import METHODS

    for name in sorted(METHODS):
        info = METHODS[name]
        needs = ", ".join(sorted(info.needs)) or "-"
        print(f"{name}  [{info.reference}]\n  {info.summary}\n  needs: {needs}")
        for f in dataclasses.fields(info.options):
            print(f"  option {f.name}={f.default!r}: {f.metadata.get('help', '')}")
        if args.verbose_docs:
            from ..methods import REGISTRY  # the module docstrings: imports the methods (torch)

            print(textwrap.indent(REGISTRY[name].doc, "    "))
        print()
