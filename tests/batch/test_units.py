"""Batch planning on real media: units, segments on processed frames, stable ids, source lists."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fer_yolo.batch.units import longest_first, plan_units
from fer_yolo.errors import ConfigError, SourceError
from fer_yolo.sources import collect_files, read_list
from tests.helpers.videos import write_timed_clip

CLIP = "face_recognition/short_hamilton_clip.mp4"  # 29.97 fps, 275 frames: 9.2 s
SHORT = "sihanwang_video/test.mp4"  # 29.3 fps, 132 frames: 4.5 s


@pytest.mark.parametrize(
    ("segment_s", "stride", "ranges"),
    [
        (0.0, 1, [(0, None)]),  # whole files
        (5.0, 1, [(0, 138), (138, None)]),  # two segments of at most 5 s, the last to the end of the file
        (5.0, 4, [(0, 140), (140, None)]),  # segments start on processed frames (multiples of 4)
        (3.0, 1, [(0, 69), (69, 138), (138, 207), (207, None)]),  # equal segments, none over 3 s
        (60.0, 1, [(0, None)]),  # shorter than a segment: one unit
    ],
)
def test_long_videos_are_cut_into_segments(media: Path, segment_s, stride, ranges):
    units = plan_units([media / CLIP], segment_s, stride)
    assert [(u.start_frame, u.end_frame) for u in units] == ranges
    ends = [e or 275 for _, e in ranges]  # the header's 275 frames, every stride-th processed
    assert [u.expected_frames for u in units] == [-(-(e - s) // stride) for (s, _), e in zip(ranges, ends)]
    assert len({u.id for u in units}) == len(units) and {u.stem for u in units} == {"short_hamilton_clip"}


def test_a_variable_frame_rate_video_is_not_cut(tmp_path: Path):
    def ranges(path: Path) -> list[tuple]:
        return [(u.start_frame, u.end_frame) for u in plan_units([path], 1.0, 1)]

    steady = write_timed_clip(tmp_path / "steady.mp4", list(range(0, 2400, 40)))  # 60 frames, 25 fps: 2.4 s
    assert ranges(steady) == [(0, 20), (20, 40), (40, None)]
    varying = write_timed_clip(tmp_path / "vfr.mp4", [40 * i + 160 * (i > 20) for i in range(60)])
    assert ranges(varying) == [(0, None)]  # a segment's seek could land frames away
    slowing = [40 * i for i in range(30)] + [1200 + 50 * i for i in range(30)]  # 25 fps, then 20: no big step
    assert ranges(write_timed_clip(tmp_path / "slowing.mp4", slowing)) == [(0, None)]


def test_unit_ids_are_stable_and_name_what_they_cover(media: Path, tmp_path: Path):
    photos = tmp_path / "my photos"
    photos.mkdir()
    for name in ("obama.jpg", "two_people.jpg"):
        shutil.copy(media / "face_recognition" / name, photos)
    files = collect_files([str(media / SHORT), str(photos)])
    first, again = plan_units(files, 5.0), plan_units(files, 5.0)
    assert [u.id for u in first] == [u.id for u in again]  # the same command plans the same units
    assert [(u.kind, u.stem) for u in first] == [("video", "test"), ("images", "my_photos")]
    assert first[1].images == tuple(str(photos / n) for n in ("obama.jpg", "two_people.jpg"))
    shutil.copy(media / "face_recognition" / "obama_and_biden.jpg", photos)  # the folder changed: a new unit
    assert plan_units(collect_files([str(photos)]))[0].id != first[1].id


def test_same_stem_in_two_folders_gets_two_outputs(media: Path, tmp_path: Path):
    for folder, name in (("a", "clip.mp4"), ("b", "clip.mp4"), ("c", "Clip.mp4")):  # macOS: Clip is clip
        (tmp_path / folder).mkdir()
        shutil.copy(media / SHORT, tmp_path / folder / name)
    units = plan_units(collect_files([str(tmp_path)]))
    assert [u.stem for u in units] == ["clip", "clip_2", "Clip_3"] and len({u.id for u in units}) == 3


def test_sources_named_like_the_run_tables_do_not_take_their_names(media: Path, tmp_path: Path):
    (tmp_path / "faces").mkdir()
    shutil.copy(media / "face_recognition" / "obama.jpg", tmp_path / "faces")  # an image folder "faces"
    shutil.copy(media / SHORT, tmp_path / "Sources.mp4")  # the same file as sources.csv's on macOS
    units = plan_units(collect_files([str(tmp_path / "faces"), str(tmp_path / "Sources.mp4")]))
    assert [u.stem for u in units] == ["faces_2", "Sources_2"]  # faces.csv and sources.csv stay the run's


def test_source_lists_text_and_csv(media: Path, tmp_path: Path):
    (tmp_path / "list.txt").write_text(f"# archive\n\n{media / SHORT}\nmissing.mp4\n")
    (tmp_path / "list.csv").write_text(f"id,path\n1,{media / CLIP}\n2,{media / SHORT}\n3\n")  # 3: no path
    assert read_list(tmp_path / "list.txt") == [str(media / SHORT), str(tmp_path / "missing.mp4")]
    files = collect_files([str(tmp_path / "list.txt"), str(tmp_path / "list.csv")])
    # listed once each, in first-mention order; a missing listed file stays, to be recorded as failed
    assert files == [media / SHORT, tmp_path / "missing.mp4", media / CLIP]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("nowhere/clip.mp4", "source not found"), ("empty", "no images or videos in")],
)
def test_sources_that_match_nothing_are_refused(spec, message, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=message):
        collect_files([str(tmp_path / spec)])


def test_the_longest_units_run_first(media: Path, tmp_path: Path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(media / "face_recognition" / "obama.jpg", photos)
    (tmp_path / "no_header.mp4").write_bytes(b"not a video")  # its length is unknown: it may be the longest
    units = plan_units(
        collect_files([str(photos), str(media / SHORT), str(media / CLIP), str(tmp_path)]), 5.0
    )
    assert [(u.stem, u.expected_frames) for u in longest_first(units)] == [
        ("no_header", None),
        ("short_hamilton_clip", 138),
        ("short_hamilton_clip", 137),
        ("test", 132),
        ("photos", 1),
    ]


def test_an_output_folder_inside_the_archive_is_not_read_and_the_archive_itself_is_refused(
    media: Path, tmp_path: Path
):
    from fer_yolo.batch.run import run_batch
    from fer_yolo.config import load_config

    archive = tmp_path / "archive"
    (archive / "out").mkdir(parents=True)
    shutil.copy(media / SHORT, archive / "a.mp4")
    shutil.copy(media / "face_recognition/obama.jpg", archive / "out/a_emotions.jpg")  # a first run's output
    assert collect_files([str(archive)], exclude=[archive / "out"]) == [archive / "a.mp4"]
    with pytest.raises(ConfigError, match="is a source folder"):
        run_batch([str(archive)], archive, load_config())
    assert sorted(p.name for p in archive.iterdir()) == ["a.mp4", "out"]  # refused before writing anything


def test_stream_settings_that_batch_does_not_apply_are_named(tmp_path: Path, caplog):
    from fer_yolo.batch import run_batch
    from fer_yolo.config import load_config

    missing = str(tmp_path / "missing.mp4")  # the run stops at planning, after the settings are read
    for overrides, warned in (
        ({}, ""),
        ({"stream": {"max_frames": 30, "vid_stride": 2}}, "stream.max_frames=30"),
    ):
        caplog.clear()
        with pytest.raises(SourceError):
            run_batch([missing], tmp_path / "out", load_config(overrides=overrides))
        warnings = [r.getMessage() for r in caplog.records if "does not apply" in r.getMessage()]
        assert warnings == (
            [
                f"batch does not apply {warned} (of the stream section it applies vid_stride, "
                "batch, save_json, save_csv)"
            ]
            if warned
            else []
        )
