"""salt-transfer build-lexicon: a bilingual lexicon (target word, English word) for word retrieval."""

NAME = "build-lexicon"
HELP = "bilingual lexicon (target word, English word) for word-retrieval analysis"
DESCRIPTION = "From two Strong's-tagged SWORD Bibles (offline), or a MUSE dictionary (download)."


def add_arguments(p) -> None:
    p.add_argument("--target", help="target-language Bible, e.g. sword:spaRV1909eb")
    p.add_argument("--english", help="English Bible with the same tags, e.g. sword:engWEB2015eb")
    p.add_argument(
        "--min-count", type=int, default=3, help="keep pairs seen at least this often (default: %(default)s)"
    )
    p.add_argument("--muse", metavar="LANG", help="download the MUSE LANG-en dictionary instead")
    p.add_argument("--url", help="MUSE download address (a mirror, or file:// for tests)")
    p.add_argument("--out", required=True, help="lexicon TSV to write")


def run(args) -> None:
    from ..corpora import muse_lexicon, strongs_lexicon, write_lexicon
    from ..errors import InputError
    from ..provenance import check_output
    from .common import LOG

    check_output(args.out)
    if args.muse:
        rows = muse_lexicon(args.muse, url=args.url)
        source = {"muse": args.muse, "url": args.url}
    elif args.target and args.english:
        if args.min_count < 1:
            raise InputError(f"--min-count {args.min_count}: must be at least 1")
        rows = strongs_lexicon(args.target, args.english, min_count=args.min_count)
        source = {"target": args.target, "english": args.english, "min_count": args.min_count}
    else:
        raise InputError("give --muse LANG, or --target and --english (two Strong's-tagged sword: Bibles)")
    write_lexicon(rows, args.out, source, config_hash=args.config_hash)
    LOG.info("%d word pairs -> %s", len(rows), args.out)
