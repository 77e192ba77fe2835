"""Pack a training run's best weights for weights/ (fp16, inference-only, safe to load).

    python tools/ship_weights.py detector RUNS/detect/RUN/weights/best.pt weights/face_yolo11n.pt
    python tools/ship_weights.py emotion RUNS/emotion/RUN/weights/best.pt weights/emotion_resnet34.pt
    python tools/ship_weights.py emotion RUNS/emotion/A/weights/best.pt RUNS/emotion/B/weights/best.pt OUT.pt

(RUNS: ~/.cache/fer-yolo/runs by default.)

The detector file stays an ultralytics checkpoint (EMA model, no optimizer) read through ultralytics'
allow-list loader; the emotion file is {"state_dict", "meta"} read with torch.load(weights_only=True).
Several emotion checkpoints are averaged into one file (a soup of runs that continue one another).
Ship only what `fer-yolo eval` shows is better than the file it replaces, and update its model card.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_yolo.detectors.yolo import save_face_weights
from fer_yolo.emotion.classifier import save_emotion_weights
from fer_yolo.onnx_backend import exported_from


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["detector", "emotion"])
    p.add_argument("src", nargs="+", help="a run's weights/best.pt (emotion: one or more, averaged)")
    p.add_argument("dst", help="output file under weights/")
    p.add_argument("--note", default="", help="stored in the file (e.g. the command that trained it)")
    args = p.parse_args()
    sources = [Path(s).expanduser() for s in args.src]
    if Path(args.dst).name in ("best.pt", "last.pt"):  # a forgotten output would overwrite the last input
        p.error(f"the output {args.dst} looks like a run's checkpoint: name a file under weights/ last")
    if len(sources) == 1:
        save = save_face_weights if args.kind == "detector" else save_emotion_weights
        out = save(sources[0], args.dst, source=str(sources[0]), note=args.note)
    elif args.kind == "emotion":  # the sources are listed in meta["averaged"]
        out = save_emotion_weights(sources, args.dst, note=args.note)
    else:
        p.error("detector weights are shipped from one run")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    int8 = out.with_name(f"{out.stem}_int8.onnx")  # what ONNX Runtime runs instead, if shipped
    if int8.is_file() and not exported_from(int8, out):
        print(f"{int8} is an export of another file: fer-yolo export --weights {out} --int8, then copy it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
