import argparse
import sys

from .sources import FETCHERS, fetch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.data")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and sha256-verify a dataset into the cache")
    f.add_argument("names", nargs="+", choices=sorted(FETCHERS))
    f.add_argument("--root", default=None, help="cache folder (default: $MTCRL_DATA or data/cache)")
    args = p.parse_args(argv)
    for name in args.names:
        print(f"{name}: {fetch(name, args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
