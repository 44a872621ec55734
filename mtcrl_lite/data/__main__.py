import argparse
import sys

from tqdm.auto import tqdm

from mtcrl_lite.data.sources import CHECK_HINT, FETCHERS, DataMissingError, fetch

# datasets that cannot be fetched here, whose layout `fixture` writes in miniature
FIXTURES = ("taskonomy", "nyuv2", "cityscapes")


def write_fixture(name: str, folder: str, views: int, size: int, seed: int, layout: str = "mtan") -> str:
    """Write the fixture of dataset `name` under `folder`; returns a description of what was written."""
    if name == "taskonomy":
        from mtcrl_lite.data import taskonomy as T

        buildings = T.fixture_buildings()
        root = T.write_fixture(folder, buildings, views_per_building=views, size=size, seed=seed)
        n_files = sum(1 for _ in root.rglob("*.png"))
        lists = T.split_lists()
        parts = {p: [b for b in buildings if b in lists[p]] for p in T.PARTS}
        return (
            f"taskonomy fixture: {n_files} PNG files in {root}: {len(buildings)} buildings "
            f"(train {', '.join(parts['train'])}; val {', '.join(parts['val'])}; "
            f"test {', '.join(parts['test'])}), {views} views each, {size}x{size}, folders rgb "
            f"{' '.join(T.TASK_NAMES)}.\nUse it with --set data.root={root} (split 'taskgrouping')."
        )
    if name in ("nyuv2", "cityscapes"):
        from mtcrl_lite.data import cityscapes, nyuv2

        if name == "nyuv2":
            root = nyuv2.write_fixture(folder, seed=seed)
            what = "the MTAN layout (train/ val/ with image label depth normal, scene_types.csv)"
        else:
            root = cityscapes.write_fixture(folder, layout=layout, seed=seed)
            what = f"the {layout} layout" + (
                " (train/ val/ with image label_7 depth, cities.csv)"
                if layout == "mtan"
                else " (leftImg8bit gtFine disparity)"
            )
        n_files = sum(1 for p in root.rglob("*") if p.is_file())
        extra = " --set data.layout=official" if layout == "official" else ""
        return (
            f"{name} fixture: {n_files} files in {root}, {what}.\n"
            f"Use it with --dataset {name} --set data.root={root}{extra}"
        )
    raise KeyError(f"no fixture for {name!r}; valid: {FIXTURES}")


def check(name: str, root: str, layout: str = "mtan", missing_labels: str = "error") -> tuple[int, list[str]]:
    """Read every sample of dataset `name` under `root` once, as training reads it: (number of samples, one error per
    sample that cannot be read). A missing folder or label file (missing_labels="error") fails the build itself."""
    from mtcrl_lite.data import DATASETS, build_dataset

    extra = {"layout": layout} if name == "cityscapes" else {}
    data = build_dataset(name, DATASETS[name][0](root=root, missing_labels=missing_labels, **extra))
    samples = [(s, item) for s in (*data.train_envs.values(), data.val, data.test) for item in s.items]
    errors = []
    for split, item in tqdm(samples, desc=f"{name}: reading", leave=False, disable=None):
        try:
            split.read(item)
        except (DataMissingError, ValueError) as e:
            errors.append(str(e).replace(CHECK_HINT.format(name=name), ""))
    return len(samples), errors


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtcrl_lite.data")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and sha256-verify a dataset into the cache")
    f.add_argument("names", nargs="+", choices=sorted(FETCHERS))
    f.add_argument("--root", default=None, help="cache folder (default: $MTCRL_DATA or data/cache)")
    x = sub.add_parser("fixture", help="write a tiny copy of a dataset in its real layout (synthetic content)")
    x.add_argument("name", choices=FIXTURES)
    x.add_argument("dir", help="folder to write (the dataset root, e.g. for --set data.root=DIR)")
    x.add_argument("--views", type=int, default=3, help="views per building (default 3)")
    x.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--layout", default="mtan", choices=["mtan", "official"], help="cityscapes: which layout")
    c = sub.add_parser("check", help="read every file of a dataset on disk once; list those that cannot be read")
    c.add_argument("name", choices=FIXTURES)
    c.add_argument("root", help="the dataset root (data.root)")
    c.add_argument("--layout", default="mtan", choices=["mtan", "official"], help="cityscapes: which layout")
    c.add_argument(
        "--missing-labels", default="error", choices=["error", "invalid"], help="data.missing_labels (as in training)"
    )
    m = sub.add_parser(
        "nyuv2-manifest",
        help="write ROOT/scene_types.csv from the official NYUv2 files "
        "(the split by scene type; see mtcrl_lite/data/nyuv2_manifest.py)",
    )
    m.add_argument("labeled", help="nyu_depth_v2_labeled.mat (official, MATLAB v7.3)")
    m.add_argument("splits", help="splits.mat (official: trainNdxs, testNdxs)")
    m.add_argument("root", help="the MTAN NYUv2 copy (data.root) to write scene_types.csv into")
    args = p.parse_args(argv)
    if args.cmd == "nyuv2-manifest":
        from mtcrl_lite.data.nyuv2_manifest import write_manifest_from_official

        print(f"wrote {write_manifest_from_official(args.labeled, args.splits, args.root)}")
        return 0
    if args.cmd == "check":
        try:
            n, errors = check(args.name, args.root, args.layout, args.missing_labels)
        except (DataMissingError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if errors:
            print(f"error: {len(errors)} of {n} samples cannot be read:", *errors, sep="\n    ", file=sys.stderr)
            return 1
        print(f"{args.name}: all {n} samples under {args.root} read")
        return 0
    if args.cmd == "fixture":
        print(write_fixture(args.name, args.dir, args.views, args.size, args.seed, args.layout))
        return 0
    for name in args.names:
        try:
            print(f"{name}: {fetch(name, args.root)}")
        except DataMissingError as e:
            print(e, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
