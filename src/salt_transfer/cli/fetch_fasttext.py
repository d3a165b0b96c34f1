"""salt-transfer fetch-fasttext: a pretrained fastText model (cc.<lang>.300.bin, the paper's setting)."""

from .common import progress

NAME = "fetch-fasttext"
HELP = "download a pretrained fastText model (cc.<lang>.300.bin, the paper's setting)"


def add_arguments(p) -> None:
    p.add_argument("--lang", required=True, help="ISO language code, e.g. de, ar or vi")
    p.add_argument("--out", required=True, help=".bin to write (about 7 GB uncompressed)")
    p.add_argument(
        "--url",
        help="download from here instead of fasttext.cc: a mirror ({lang} is replaced), or file:// for tests",
    )
    p.add_argument(
        "--sha256", help="expected sha256 of the .gz download (fasttext.cc publishes none; a mirror may)"
    )


def run(args) -> None:
    from ..downloads import download_fasttext
    from .common import LOG

    info = download_fasttext(
        args.lang,
        args.out,
        url=args.url,
        sha256=args.sha256,
        progress=progress(args),
        config_hash=args.config_hash,
    )
    LOG.info("fastText %s -> %s (%d bytes downloaded)", info["url"], args.out, info["bytes_downloaded"])
