"""salt-transfer report: evaluations into results.csv, tables.md, the claims table and plots."""

NAME = "report"
HELP = "collect evaluations into results.csv, tables.md, claims and plots"


def add_arguments(p) -> None:
    p.add_argument("evals", nargs="+", help="evaluation JSONs under results/eval/")
    p.add_argument(
        "--grid",
        help="grid as a JSON file or inline JSON: {plms: {name: {language, architecture}}, methods: [...], llms: [...]}",
    )
    p.add_argument("--out-dir", required=True, help="report directory")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def grid_arg(text: str | None) -> dict:
    import json
    from pathlib import Path

    from ..errors import InputError

    if not text:
        return {}
    if text.lstrip().startswith("{"):
        source, raw = "--grid", text
    else:
        path = Path(text)
        if not path.is_file():
            raise InputError(f"--grid {text}: no such file (give a JSON file or inline JSON)")
        source, raw = f"--grid {path}", path.read_text(encoding="utf-8", errors="replace")
    try:
        grid = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not JSON ({exc})") from exc
    if not isinstance(grid, dict):
        raise InputError(f"{source}: expected a JSON object")
    return grid


def run(args) -> None:
    from ..report import write_report
    from .common import LOG

    df = write_report(args.evals, grid_arg(args.grid), args.out_dir, plots=not args.no_plots)
    LOG.info("report: %d rows -> %s", len(df), args.out_dir)
