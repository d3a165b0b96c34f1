"""salt-transfer audit: re-hash every artifact results.csv names and compare (exit 1 on a mismatch)."""

NAME = "audit"
HELP = "re-hash every artifact results.csv names; compare with the rows, *.meta.json and dvc.lock"
DESCRIPTION = (
    "Checks, for every row: the evaluation JSON's sha256 and the value in it; the sha256 of the model, "
    "the evaluated text and the fitted embeddings; the *.meta.json chain back to the downloaded inputs "
    "in data/; every file of every stage output in dvc.lock; and that no evaluation the workflow "
    "produced is missing from the table. Prints the mismatches (artifact, check, expected, found, rows "
    "affected) and exits 1 if there is any; never rewrites what it checks. Run it from the workflow "
    "folder (paths in results.csv are relative)."
)


def add_arguments(p) -> None:
    p.add_argument(
        "results_csv",
        nargs="?",
        default="results/report/results.csv",
        help="the results table (default: %(default)s); its paths are relative to the current folder",
    )
    p.add_argument(
        "--dvc-lock", help="dvc.lock to compare every stage output with (default: ./dvc.lock when it exists)"
    )
    p.add_argument("--no-dvc-lock", action="store_true", help="do not compare with dvc.lock")
    p.add_argument("--out", help="also write every check, passed or failed, to this TSV")


def run(args) -> int:
    from pathlib import Path

    from ..audit import audit, format_report, write_manifest
    from ..errors import InputError

    lock = None if args.no_dvc_lock else args.dvc_lock or ("dvc.lock" if Path("dvc.lock").is_file() else None)
    if lock is not None and not Path(lock).is_file():
        raise InputError(f"--dvc-lock {lock}: no such file")
    report = audit(args.results_csv, dvc_lock=lock)
    print(format_report(report))
    if lock is None:
        print("  dvc.lock: not compared (none found; --dvc-lock names one)")
    if args.out:
        write_manifest(report, args.out)
    return 0 if report.ok else 1
