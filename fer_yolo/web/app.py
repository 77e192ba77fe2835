"""The web app: one page (image, video and live tabs) and the JSON API it uses, documented at /openapi.json.

Routes only call the shared Pipeline; uploads are size-limited and type-checked by content, files
live in per-job temporary folders addressed by random ids, and errors come back as {"error": message}.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import cv2
from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fer_yolo import __version__
from fer_yolo.annotation import FaceAnnotator
from fer_yolo.faces import face_records
from fer_yolo.pipeline import Pipeline
from fer_yolo.sources import ArraySource, safe_stem
from fer_yolo.web.jobs import JOB_FILES, VideoJobs
from fer_yolo.web.live import LiveFeed
from fer_yolo.web.uploads import UploadError, check_size, check_video, read_image, release_memory

LOGGER = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20


def create_app(cfg: dict, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the app.

    Args:
        cfg: The whole config (sections pipeline, stream and serve).
        pipeline: Use this pipeline instead of building one from cfg["pipeline"] (tests, embedding).
    """
    serve = cfg["serve"]
    pipeline = pipeline or Pipeline.from_config(cfg["pipeline"])
    jobs = VideoJobs(
        pipeline, cfg["stream"], serve["job_ttl_s"], serve["max_jobs"], serve["max_video_frames"]
    )
    stream = cfg["stream"]
    live_annotator = FaceAnnotator.from_config(stream)  # as stream draws a live source
    live = LiveFeed(pipeline.fork(), str(serve["source"]), live_annotator) if serve["source"] != "" else None
    lock, annotator = threading.Lock(), FaceAnnotator(bars=False, show_fps=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if live is not None:
            live.stop()
        jobs.close()

    app = FastAPI(
        title="fer-yolo",
        version=__version__,
        description="Faces and their emotions in images, videos and a live source.",
        docs_url=None,  # Swagger UI would load scripts from a CDN: the schema is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    limits = {"/api/image": serve["max_image_mb"], "/api/videos": serve["max_video_mb"]}
    app.add_middleware(BodyLimit, limits_mb=limits)
    # Outermost: a request over the limit is answered before anything reads its body (a video upload is
    # stored whole before its route can reserve a job: uploads in progress and jobs queued or running count).
    in_flight = {"/api/image": serve["max_image_requests"], "/api/videos": serve["max_jobs"]}
    app.add_middleware(InFlightLimit, limits=in_flight, taken={"/api/videos": jobs.busy})

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)  # also the router's 404 and 405
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"bad request: {where}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        LOGGER.exception("error on %s", request.url.path)
        return JSONResponse({"error": "internal error: the server log has the details"}, status_code=500)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/info")
    def info() -> dict:
        """Limits and what this server offers."""
        return {
            "version": __version__,
            "emotions": list(pipeline.classifier.class_names),
            "weights": {role: Path(w).name for role, w in pipeline.weights.items()},  # names, not paths
            "max_image_mb": serve["max_image_mb"],
            "max_image_mp": serve["max_image_mp"],
            "max_image_requests": serve["max_image_requests"],
            "max_video_mb": serve["max_video_mb"],
            "max_video_frames": serve["max_video_frames"],
            "live": live is not None,
        }

    @app.post("/api/image")
    def image(file: UploadFile = File(...), annotated: bool = True) -> dict:
        """Faces in an image: boxes, emotion, probabilities, and (by default) the annotated image as JPEG.

        Boxes are in the uploaded image's pixels; a large image is scaled to `serve.max_image_side` before it
        is processed and annotated (`annotated_scale`). At most `serve.max_image_requests` images are in
        progress or waiting at once; more get 429 before their upload is read.
        """
        try:
            with lock:  # one image at a time, reading included: memory stays that of one image
                # waiting uploads stay in Starlette's spooled files (on disk past 1 MB), not in bytes
                data = file.file.read(int(serve["max_image_mb"] * 1e6) + 1)
                frame, scale = read_image(
                    data, serve["max_image_mb"], serve["max_image_mp"], serve["max_image_side"]
                )
                del data
                source = ArraySource([frame], name="upload")
                result = next(pipeline.run(source, annotator=annotator if annotated else None))
                jpeg = None
                if annotated:
                    ok, jpeg = cv2.imencode(".jpg", result.annotated, [cv2.IMWRITE_JPEG_QUALITY, 88])
                height, width = (round(v / scale) for v in frame.shape[:2])
                faces, latency = result.faces, result.latency_ms
                del frame, source, result
        finally:
            release_memory()
        out = {
            "width": width,
            "height": height,
            "latency_ms": latency,
            "faces": [
                {
                    "box_xyxy": list(r.xyxy),
                    "confidence": r.confidence,
                    "emotion": r.emotion,
                    "probs": dict(zip(pipeline.classifier.class_names, r.probs)),
                }
                for r in face_records(0, 0.0, faces, scale)
            ],
        }
        if jpeg is not None:
            out["annotated_jpeg"] = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()
            out["annotated_scale"] = round(scale, 6)
        return out

    @app.post("/api/videos", status_code=202)
    def upload_video(file: UploadFile = File(...)) -> dict:
        """Queue a video; poll the returned status URL, then fetch its files."""
        slot = jobs.reserve()
        if slot is None:
            raise UploadError("too many videos in progress; try again later", status=429)
        job_id, folder = slot
        upload, size = folder / "upload", 0
        try:
            with upload.open("wb") as f:
                while chunk := file.file.read(_CHUNK):
                    size += len(chunk)
                    check_size(size, serve["max_video_mb"], "video")
                    f.write(chunk)
            check_size(size, serve["max_video_mb"], "video")
            total, _ = check_video(upload, serve["max_video_mb"], serve["max_video_frames"])
        except BaseException:  # refused or failed: nothing of this upload stays behind
            jobs.release(job_id)
            raise
        # outputs name the video as the client did (its file name, made safe), not the server's stored copy
        job = jobs.submit(job_id, folder, upload, total, safe_stem(Path(file.filename or "upload").name))
        return {"id": job.id, "status_url": f"/api/videos/{job.id}"}

    def _job(job_id: str):
        job = jobs.get(job_id) if _JOB_ID.match(job_id) else None
        if job is None:
            raise UploadError("no such video job (finished jobs expire)", status=404)
        return job

    @app.get("/api/videos/{job_id}")
    def video_status(job_id: str) -> dict:
        """Progress of a video job, and its file URLs once done."""
        return _job(job_id).to_dict()

    @app.get("/api/videos/{job_id}/{name}")
    def video_file(job_id: str, name: str) -> FileResponse:
        """A finished job's file: video.webm, timeline.csv, timeline.jsonl, emotions.png or summary.json."""
        job = _job(job_id)
        if name not in JOB_FILES or job.status != "done" or not (job.folder / JOB_FILES[name]).is_file():
            raise UploadError(f"no file {name!r} for this job", status=404)
        return FileResponse(job.folder / JOB_FILES[name], filename=f"fer-yolo-{name}")

    @app.get("/api/live.mjpg")
    def live_stream() -> StreamingResponse:
        """The live source, annotated, as MJPEG (multipart/x-mixed-replace)."""
        if live is None:
            raise UploadError("no live source configured: start the server with --source", status=404)
        return StreamingResponse(live.mjpeg(), media_type="multipart/x-mixed-replace; boundary=frame")

    @app.get("/api/live/stats")
    def live_stats() -> dict:
        """Faces per emotion over the last minute of the live source, per second."""
        if live is None:
            raise UploadError("no live source configured: start the server with --source", status=404)
        return live.stats()

    return app


class InFlightLimit:
    """ASGI middleware answering 429 at once to a request for a path that already has its limit of
    requests in progress or waiting, before anything reads its body.

    Each waiting image upload holds its body (Starlette parses it before the route runs, and the server
    accepts any number of connections): without a bound, a burst of 20 MB uploads holds them all.
    `taken` counts, per path, slots held outside the requests in progress (video jobs queued or running).
    """

    def __init__(
        self, app, limits: dict[str, int], taken: dict[str, Callable[[], int]] | None = None
    ) -> None:
        self.app, self.limits, self.taken = app, limits, taken or {}
        self.active = dict.fromkeys(limits, 0)  # changed on the event loop only: no lock needed

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else None
        if path not in self.limits:
            await self.app(scope, receive, send)
            return
        taken = self.taken.get(path)
        if self.active[path] + (taken() if taken else 0) >= self.limits[path]:
            message = f"too many requests to {path} at once (limit {self.limits[path]}); try again shortly"
            busy = JSONResponse({"error": message}, status_code=429, headers={"Retry-After": "1"})
            await busy(scope, receive, send)
            return
        self.active[path] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active[path] -= 1


class BodyLimit:
    """ASGI middleware refusing request bodies over a per-path limit before they are stored anywhere.

    Starlette spools a multipart upload to disk before the route runs, so the route's own check comes
    too late to protect the disk: this one rejects a too-large Content-Length at once (413), and counts
    the bytes of bodies sent without one.
    """

    def __init__(self, app, limits_mb: dict[str, float], overhead: int = 1 << 16) -> None:
        self.app, self.limits, self.overhead = app, limits_mb, overhead

    async def __call__(self, scope, receive, send) -> None:
        limit_mb = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if limit_mb is None:
            await self.app(scope, receive, send)
            return
        max_bytes = int(limit_mb * 1e6) + self.overhead  # multipart headers around the file
        message = f"the upload is over the {limit_mb:g} MB limit"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            await JSONResponse({"error": message}, status_code=413)(scope, receive, send)
            return
        seen, started = 0, False

        async def counted_receive():
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > max_bytes:  # FastAPI passes an HTTPException from its body parsing on as it is
                raise HTTPException(413, message)
            return msg

        async def tracked_send(msg):
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except HTTPException:  # raised where no route's handler turned it into a response
            if not started:
                await JSONResponse({"error": message}, status_code=413)(scope, receive, send)
