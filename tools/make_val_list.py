"""Write a fixed, stratified validation list for a train/<emotion>/ folder (e.g. RAF-DB basic train).

Per emotion, the files whose sha1(file name) sorts first, `--share` of them (rounded), are held out: the list
depends on the names only, so it is the same on every machine and never changes as files are added elsewhere.

    python tools/make_val_list.py ../shared/data/rafdb datasets/rafdb_val.txt --share 0.1
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from fer_yolo.data.crops import split_files
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.utils.io import write_text


def val_list(root: Path, share: float) -> list[str]:
    by_class: dict[int, list[str]] = {}
    for path, cid in split_files(root, "train"):
        by_class.setdefault(cid, []).append(path.relative_to(root).as_posix())
    picked = []
    for cid in sorted(by_class):
        names = sorted(by_class[cid], key=lambda n: hashlib.sha1(Path(n).name.encode()).hexdigest())
        picked += sorted(names[: round(share * len(names))])
    return picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--share", type=float, default=0.1)
    args = ap.parse_args()
    files = val_list(args.root, args.share)
    counts = {e: sum(f.split("/")[1] == e for f in files) for e in EMOTIONS}
    head = f"# {len(files)} files of {args.root.name}/train held out for validation "
    head += f"({args.share:.0%} per emotion, "
    head += "by sha1 of the file name; tools/make_val_list.py)\n# " + ", ".join(
        f"{e} {n}" for e, n in counts.items()
    )
    write_text(args.out, head + "\n" + "\n".join(files) + "\n")
    print(head)


if __name__ == "__main__":
    main()
