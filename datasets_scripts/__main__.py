"""Command line: `python -m datasets_scripts convert RAW_DIR OUT_DIR --benchmark MIntRec|MIntRec2.0 ...`
and `python -m datasets_scripts extract --clips DIR --tsv annotations.tsv --out RELEASE ...`.

Converts an official release folder to Parquet shards + a dataset card (see convert.py) and
optionally uploads the result to a Hub dataset repo. `extract` makes a release in the official layout from
your own clips (see clips.py).
"""

import argparse
import logging
import sys

from dyken_hyena.hub import HubUploadError, upload_folder

from .clips import add_extract_parser, run_extract
from .convert import UPLOAD_PATTERNS, convert_to_parquet


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m datasets_scripts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="official release folder -> Parquet dataset (+ optional Hub push)")
    convert.add_argument("raw_dir", help="the release folder (MIntRec/ or MIntRec2.0/, official layout)")
    convert.add_argument("out_dir", help="output folder: README.md + data/{split}-0000i-of-0000N.parquet")
    convert.add_argument("--benchmark", choices=["MIntRec", "MIntRec2.0"], default="MIntRec")
    convert.add_argument("--task", choices=["intent", "binary"], default="intent",
                         help="MIntRec only: 20 intents or the 2-class Emotion/Goal task")
    convert.add_argument("--include_out_of_scope", action="store_true",
                         help="MIntRec2.0 only: add UNK (id 30) test rows and ood_train/ood_validation splits")
    convert.add_argument("--skip_bad_rows", action="store_true",
                         help="skip malformed rows (listed in the log and the card) instead of failing")
    convert.add_argument("--max_shard_size", default="500MB", help="uncompressed bytes per Parquet shard (default 500MB)")
    convert.add_argument("--overwrite", action="store_true", help="replace Parquet files already in OUT_DIR/data")
    convert.add_argument("--push_to_hub", metavar="REPO", default=None, help="upload OUT_DIR to this dataset repo")
    convert.add_argument("--private", action="store_true", help="create the Hub repo as private")
    convert.add_argument("--token", default=None, help="Hub token (default: the logged-in token)")
    add_extract_parser(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "extract":
        return run_extract(args)
    out_dir = convert_to_parquet(
        args.raw_dir,
        args.out_dir,
        benchmark=args.benchmark,
        include_out_of_scope=args.include_out_of_scope,
        task=args.task,
        max_shard_size=args.max_shard_size,
        skip_bad_rows=args.skip_bad_rows,
        overwrite=args.overwrite,
        repo_id=args.push_to_hub,
    )
    print(f"Wrote {out_dir}")
    if args.push_to_hub:
        try:
            commit = upload_folder(
                out_dir,
                args.push_to_hub,
                repo_type="dataset",
                token=args.token,
                private=args.private,
                commit_message=f"Upload {args.benchmark} Parquet conversion",
                allow_patterns=UPLOAD_PATTERNS,
            )
        except HubUploadError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"Pushed to {commit.repo_url.url} (commit {commit.oid})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
