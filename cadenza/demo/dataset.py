"""Build the demo dataset: synthesised media files plus a CSV in the exact MusicCaps format.

Layout of `out_dir`:
    musiccaps-demo.csv      9 MusicCaps columns, CRLF line ends, sorted by ytid like the real file
    media/{ytid}.m4a        20 s of audio per clip (AAC in MP4, or WAV); the CSV window is 10 s of it
    ontology.json           the part of the AudioSet ontology the demo's labels need (so the audit runs offline)
    demo-manifest.json      what was built from which parameters, with a SHA-256 per file

A few rows are planted to fail, so the demo shows the failure path: a malformed ytid and an empty window
(rejected by CSV validation) and a well-formed row whose media file does not exist (HTTP 404 at fetch).

Building is deterministic (same arguments, same bytes) and idempotent: files whose manifest entry and
hash still match are kept, anything missing or different is rebuilt, nothing else is touched.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.demo import styles, synth
from cadenza.formats.storage import read_json, write_bytes_atomic, write_json_atomic
from cadenza.musiccaps.schema import CSV_COLUMNS

DEMO_VERSION = 1  # bump whenever synthesis or metadata changes: cached demo files are then rebuilt
CSV_NAME = "musiccaps-demo.csv"
ONTOLOGY_NAME = "ontology.json"
MANIFEST_NAME = "demo-manifest.json"
MEDIA_DURATION_S = 20.0
CLIP_DURATION_S = 10.0
AUDIO_FORMATS = ("m4a", "wav")


@dataclass(frozen=True)
class DemoClip:
    ytid: str
    style: str
    seed: int
    start_s: int
    end_s: int
    media: str  # path relative to the dataset root
    sha256: str = ""


@dataclass(frozen=True)
class PlantedFailure:
    """A CSV row that must fail, where (stage) and why (reason: text the failure message contains)."""

    ytid: str
    kind: str  # bad_ytid | empty_window | missing_media
    stage: str  # validate | fetch
    reason: str


@dataclass
class DemoDataset:
    root: Path
    csv_path: Path
    media_dir: Path
    audio_format: str
    sample_rate: int
    clips: list[DemoClip] = field(default_factory=list)
    planted: list[PlantedFailure] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)  # files (re)written by this call; empty when all reused

    @property
    def ontology_path(self) -> Path:
        return self.root / ONTOLOGY_NAME

    @property
    def reused(self) -> bool:
        return not self.rebuilt

    def url_template(self, base_url: str) -> str:
        """Where a server rooted at this dataset serves each clip, e.g. http://127.0.0.1:8000/media/{ytid}.m4a"""
        return f"{base_url.rstrip('/')}/media/{{ytid}}.{self.audio_format}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root), "csv": str(self.csv_path), "media_dir": str(self.media_dir),
            "ontology": str(self.ontology_path),
            "audio_format": self.audio_format, "sample_rate": self.sample_rate,
            "clips": [asdict(c) for c in self.clips], "planted": [asdict(p) for p in self.planted],
            "rebuilt": list(self.rebuilt),
        }


def demo_ytid(seed: int, tag: str) -> str:
    """An 11-character id shaped like a YouTube id (64 bits, base64url), derived from seed and tag."""
    digest = hashlib.sha256(f"cadenza-demo/{seed}/{tag}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:8]).decode().rstrip("=")


def _clip_seed(seed: int, i: int) -> int:
    return int.from_bytes(hashlib.sha256(f"cadenza-demo-seed/{seed}/{i}".encode()).digest()[:4], "little")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def encode_audio(pcm16: np.ndarray, sr: int, path: Path, audio_format: str) -> None:
    """Encode mono int16 PCM to `path` reproducibly (no timestamps or encoder versions in the file)."""
    if audio_format == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sr)
            w.writeframes(pcm16.astype("<i2").tobytes())
        write_bytes_atomic(str(path), buf.getvalue())
        return
    from cadenza.common.ffmpeg import ensure_ffmpeg

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    cmd = [
        ensure_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "s16le", "-ar", str(sr), "-ac", "1", "-i", "pipe:0",
        "-c:a", "aac", "-b:a", "96k", "-map_metadata", "-1", "-movflags", "+faststart",
        "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "mp4", str(tmp),
    ]
    proc = subprocess.run(cmd, input=pcm16.astype("<i2").tobytes(), capture_output=True, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not encode {path.name}: {proc.stderr.decode(errors='replace')[-500:]}")
    os.replace(tmp, path)


def _plan(n_clips: int, seed: int, audio_format: str) -> tuple[list[DemoClip], list[dict[str, str]]]:
    """The clips to synthesise and every CSV row (clips and planted failures), unsorted."""
    clips: list[DemoClip] = []
    rows: list[dict[str, str]] = []
    for i, style_name in enumerate(styles.allocate(n_clips)):
        cs = _clip_seed(seed, i)
        rng = np.random.default_rng(cs)
        start = int(rng.integers(0, int(MEDIA_DURATION_S - CLIP_DURATION_S) + 1))
        ytid = demo_ytid(seed, f"clip-{i}")
        clips.append(DemoClip(ytid, style_name, cs, start, start + int(CLIP_DURATION_S),
                              f"media/{ytid}.{audio_format}"))
        rows.append(_row(ytid, start, start + int(CLIP_DURATION_S), styles.describe(styles.STYLES[style_name], rng),
                         rng))
    return clips, rows


def _row(ytid: str, start: int, end: int, text: styles.ClipText, rng: np.random.Generator) -> dict[str, str]:
    return {
        "ytid": ytid, "start_s": str(start), "end_s": str(end),
        "audioset_positive_labels": ",".join(text.mids),
        "aspect_list": str(list(text.aspects)),  # Python list literal, exactly as MusicCaps writes it
        "caption": text.caption, "author_id": str(text.author_id),
        "is_balanced_subset": str(bool(rng.random() < 0.18)),
        "is_audioset_eval": str(bool(rng.random() < 0.5)),
    }


def _planted_rows(seed: int) -> tuple[list[PlantedFailure], list[dict[str, str]]]:
    rng = np.random.default_rng([seed, 404])
    house = styles.STYLES["house"]
    truncated = demo_ytid(seed, "bad-ytid")[:10]  # a copy-paste that lost a character
    missing = demo_ytid(seed, "missing-media")
    swapped = demo_ytid(seed, "empty-window")
    planted = [
        PlantedFailure(truncated, "bad_ytid", "validate", "not a YouTube id"),
        PlantedFailure(swapped, "empty_window", "validate", "window is empty"),
        PlantedFailure(missing, "missing_media", "fetch", "404"),
    ]
    rows = [
        _row(truncated, 0, 10, styles.describe(house, rng), rng),
        _row(swapped, 15, 5, styles.describe(house, rng), rng),  # start and end swapped
        _row(missing, 0, 10, styles.describe(house, rng), rng),
    ]
    return planted, rows


def csv_text(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["ytid"]):
        writer.writerow(row)
    return buf.getvalue()


def build_demo_dataset(
    out_dir: str | os.PathLike[str], n_clips: int = 36, seed: int = 0, *, audio_format: str = "m4a",
    sample_rate: int = synth.DEFAULT_SR, workers: int = 2, progress: bool = True,
) -> DemoDataset:
    """Write (or reuse) the demo dataset under `out_dir` and describe it."""
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, not {audio_format!r}")
    if n_clips < 1:
        raise ValueError(f"n_clips must be at least 1, not {n_clips}")
    root = Path(out_dir).expanduser().resolve()
    media_dir = root / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    params = {"version": DEMO_VERSION, "n_clips": n_clips, "seed": seed, "audio_format": audio_format,
              "sample_rate": sample_rate, "media_duration_s": MEDIA_DURATION_S}
    manifest_path = root / MANIFEST_NAME
    old = read_json(str(manifest_path)) if manifest_path.is_file() else {}
    # files from an earlier call are reusable only if made with the same rendering parameters
    same_params = {k: v for k, v in old.get("params", {}).items() if k != "n_clips"} == {
        k: v for k, v in params.items() if k != "n_clips"}
    old_clips = {c["media"]: c for c in old.get("clips", [])} if same_params else {}

    clips, rows = _plan(n_clips, seed, audio_format)
    planted, bad_rows = _planted_rows(seed)
    ds = DemoDataset(root, root / CSV_NAME, media_dir, audio_format, sample_rate, planted=planted)

    def up_to_date(c: DemoClip) -> str:
        prev = old_clips.get(c.media)
        if not prev or (prev["style"], prev["seed"]) != (c.style, c.seed):
            return ""
        return prev["sha256"] if prev["sha256"] == _sha256(root / c.media) else ""

    def build(c: DemoClip) -> str:
        x = synth.render(c.style, c.seed, MEDIA_DURATION_S, sample_rate)
        encode_audio(synth.to_pcm16(x), sample_rate, root / c.media, audio_format)
        return _sha256(root / c.media)

    hashes = {c.media: up_to_date(c) for c in clips}
    todo = [c for c in clips if not hashes[c.media]]
    if todo:
        from rich.progress import Progress

        with Progress(transient=True, disable=not progress) as bar, ThreadPoolExecutor(max(1, workers)) as pool:
            task = bar.add_task(f"synthesising {len(todo)} demo clips", total=len(todo))
            for c, digest in zip(todo, pool.map(build, todo), strict=True):
                hashes[c.media] = digest
                ds.rebuilt.append(c.media)
                bar.advance(task)
    ds.clips = [DemoClip(**{**asdict(c), "sha256": hashes[c.media]}) for c in clips]

    # media we wrote before that is no longer wanted, and any file at the planted-missing path, go
    wanted = {c.media for c in clips}
    for stale in sorted(set(old_clips) - wanted):
        (root / stale).unlink(missing_ok=True)
    for p in planted:
        for ext in AUDIO_FORMATS:
            (media_dir / f"{p.ytid}.{ext}").unlink(missing_ok=True)

    text = csv_text(rows + bad_rows).encode("utf-8")
    ontology = (json.dumps(styles.ontology_subset_json(), indent=1) + "\n").encode()
    for name, data in ((CSV_NAME, text), (ONTOLOGY_NAME, ontology)):
        if not (root / name).is_file() or (root / name).read_bytes() != data:
            write_bytes_atomic(str(root / name), data)
            ds.rebuilt.append(name)
    manifest = {"params": params, "csv": {"path": CSV_NAME, "sha256": hashlib.sha256(text).hexdigest()},
                "clips": [asdict(c) for c in ds.clips], "planted": [asdict(p) for p in planted]}
    if old != manifest:
        write_json_atomic(str(manifest_path), manifest)
        ds.rebuilt.append(MANIFEST_NAME)
    return ds
