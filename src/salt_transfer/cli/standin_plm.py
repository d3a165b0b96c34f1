"""salt-transfer standin-plm: a small stand-in target-language PLM (tokenizer + model) trained on a corpus."""

from ..options import add_arguments as add_option_flags
from ..settings import StandinOptions
from .common import progress

NAME = "standin-plm"
ALIASES = ["train-plm"]
HELP = "train a small stand-in target-language PLM (tokenizer + model) on a corpus"
DESCRIPTION = (
    "Offline stand-ins for hub PLMs: BERT-style (encoder), GPT-2-style (decoder) or T5-style "
    "(encoder-decoder), trained briefly on the target corpus. Labelled as stand-ins everywhere."
)
ARCHS = ("encoder", "decoder", "encoder-decoder")


def add_arguments(p) -> None:
    p.add_argument("--arch", required=True, choices=ARCHS, help="architecture (and tokenizer family)")
    p.add_argument("--corpus", required=True, help="training text, one document per line")
    p.add_argument("--out", required=True, help="output model directory (replaced atomically)")
    add_option_flags(p, StandinOptions)


def run(args) -> None:
    from ..options import from_args
    from ..standin_plm import train_standin_plm
    from .common import LOG

    opts = from_args(StandinOptions, args)
    record = train_standin_plm(
        args.arch, args.corpus, args.out, opts, progress=progress(args), config_hash=args.config_hash
    )
    LOG.info(
        "%s stand-in: loss %.3f -> %.3f in %.0f s",
        args.arch,
        record["loss_first_10"],
        record["loss_last_10"],
        record["seconds"],
    )
