"""Settings: one explicit object, with one frozen section per stage.

Config flows one way: the defaults below, then the environment (``Settings.from_env``, the only code that
reads it), then explicit overrides in code or tests (``dataclasses.replace``). Bad values fail fast with
``InvalidSettings`` at start-up, never at the first request.

Environment names are ``MEDIAMATCH_<SECTION>_<FIELD>`` in upper case, for example
``MEDIAMATCH_IMAGE_MATCH_THRESHOLD=0.7`` or ``MEDIAMATCH_FETCH_ALLOW_NETWORKS=127.0.0.1/32,::1/128``.
Two conventional names are honoured as well: ``REDIS_URL`` (broker, rate limits) and ``DATABASE_URL``
(job and catalog store). With neither set, everything runs embedded from ``MEDIAMATCH_DATA_DIR``.

This module imports nothing from Flask or Celery.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import MediaMatchError


class InvalidSettings(MediaMatchError):
    code = "invalid_settings"


MB = 1024 * 1024


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    #: Wall-clock budget for one download, redirects included.
    total_timeout_s: float = 300.0
    max_redirects: int = 3
    #: CIDR blocks reachable even though they are private or loopback. Off by default; tests and
    #: on-premise deployments set it, e.g. ``127.0.0.1/32``.
    allow_networks: tuple[str, ...] = ()
    max_image_bytes: int = 50 * MB
    max_audio_bytes: int = 500 * MB
    max_video_bytes: int = 4096 * MB
    user_agent: str = "mediamatch/0.1 (+https://github.com/mediamatch)"
    #: PEM bundle of CAs trusted for https downloads. Empty means the system trust store; set it for
    #: on-premise servers with a private CA (and in tests).
    ca_certs: str = ""

    def max_bytes_for(self, kind: str) -> int:
        return {"image": self.max_image_bytes, "audio": self.max_audio_bytes}.get(kind, self.max_video_bytes)


@dataclass(frozen=True)
class ImageSettings:
    #: ``match`` is ``similarity_score >= match_threshold`` unless a request overrides it.
    match_threshold: float = 0.80
    #: Decompression-bomb guard: images with more pixels are refused before decoding.
    max_pixels: int = 100_000_000
    #: Low-information guard (see ``shared/kinds/image/hashing.py``): a side with a PDQ-style gradient
    #: quality below this, or fewer significant DCT coefficients than ``min_detail_coefficients``, cannot
    #: match (its score is capped below the threshold) and gets confidence "low".
    min_quality: int = 3
    min_detail_coefficients: int = 32
    #: Images with a side shorter than this get confidence "low" and a ``tiny_*`` warning.
    tiny_side_px: int = 32
    #: Local-feature stage (``shared/kinds/image/verify.py``). It is skipped when the global hashes are
    #: already this close (a clear match needs no geometry).
    local_skip_below_bits: int = 16
    #: A descriptor match needs at most this many differing bits (of the 128 stored) and must pass Lowe's
    #: ratio test.
    max_descriptor_bits: int = 36
    ratio_test: float = 0.85
    #: RANSAC inlier tolerance, in working pixels (the trimmed image resized to a 512 px long side).
    ransac_reproj_px: float = 6.0
    #: Sanity checks on the fitted similarity (see verify.py): scale range, containment of one image in
    #: the other, inlier hull over the overlap, inliers over the keypoints inside the overlap.
    max_scale_ratio: float = 6.0
    min_containment: float = 0.6
    min_inlier_spread: float = 0.02
    min_inlier_ratio: float = 0.04
    #: Fewer verified inliers than this is no local evidence (score 0); ``local_inliers_at_threshold``
    #: inliers score exactly 0.80, the default ``match_threshold`` (calibrated on bench/image, seed 1), and
    #: the local score rises towards ``local_max_score`` (< 1: a second shot of the same scene can have as
    #: many consistent keypoints as a crop, so local evidence never outranks a near-identical global hash).
    local_min_inliers: int = 6
    local_inliers_at_threshold: float = 10.0
    local_max_score: float = 0.90
    #: Photometric check of a deciding local fit (``shared/kinds/image/photometric.py``): the 64 px
    #: thumbnails, aligned through the fit, are cut into 8 px blocks; a block agrees when its NCC reaches
    #: ``block_agreement_ncc``, and the fit is kept only when at least ``min_block_agreement`` of the
    #: informative blocks agree (copies: 0.6-1.0 even with a logo; second shots of one scene, stereo pairs
    #: and neighbouring video frames: mostly below; tuned on bench/image, seed 1).
    block_agreement_ncc: float = 0.70
    min_block_agreement: float = 0.65
    #: A fit the blocks *confirm* (at least ``confirm_min_blocks`` informative blocks, of which at least
    #: ``confirm_block_agreement`` agree) needs fewer inliers: ``confirmed_inliers_at_threshold`` score
    #: 0.80. Chance fits that reach 6-9 inliers do not line up pixels (agreement ~0); copies shown small
    #: (screenshots) keep few keypoints but agree everywhere.
    confirm_block_agreement: float = 0.80
    confirm_min_blocks: int = 6
    confirmed_inliers_at_threshold: float = 6.0
    #: When the overlap covers fewer than ``confirm_min_blocks`` coarse blocks (a copy shown small in a
    #: screenshot), the check runs on 4 px blocks, and confirming needs this many of them.
    fine_confirm_min_blocks: int = 12
    #: When no fit passes, retry keeping the two nearest candidates of ratio-test failures (repeated
    #: patterns: chessboards, bricks); such a fit counts only when the block check confirms it.
    ambiguous_matching: bool = True
    #: Whole-frame check when neither the hash nor a fit decides (text watermarks on smooth pictures): if
    #: the trimmed aspect ratios agree within ``frame_max_aspect_change`` (log ratio) and at least
    #: ``frame_block_agreement`` of at least ``frame_min_blocks`` thumbnail blocks agree as is (or
    #: mirrored), the score is 0.80 there, rising to ``local_max_score`` at full agreement.
    frame_max_aspect_change: float = 0.03
    frame_block_agreement: float = 0.80
    frame_min_blocks: int = 12
    #: The whole-frame check scores each block's NCC without this fraction of its pixels, those that fit
    #: the block worst: the strokes of a text watermark (bench/image, seed 1, a prototype of the rule: the
    #: highest ordinary negative agreement rose from 0.53 to 0.68, a watermarked smooth wallpaper from 0.62
    #: to over 0.80; the floor to match, ``frame_block_agreement``, is unchanged).
    frame_drop_fraction: float = 0.25
    #: Confidence "high" for scores at or above this (or at or below ``low_score``, a clear non-match).
    high_score: float = 0.88
    low_score: float = 0.50


@dataclass(frozen=True)
class AudioSettings:
    match_threshold: float = 0.50
    max_duration_s: float = 4 * 3600.0
    #: Segments shorter than this are dropped unless a request asks otherwise.
    min_segment_s: float = 3.0
    #: Largest time-scale (tempo or speed) and pitch factors searched, each way (1.12: 1/1.12 .. 1.12).
    max_time_scale: float = 1.12
    max_pitch_factor: float = 1.12
    #: Source gaps longer than this split an aligned line into separate segments.
    max_gap_s: float = 4.0
    #: ... unless the gap is at most this long and this share of its 64 ms frame rows agree along the line
    #: (``shared/kinds/audio/match.py``, ``_join_parts``). 0 turns joining off.
    max_join_gap_s: float = 12.0
    min_join_row_share: float = 0.3
    #: A run needs this much weighted evidence (aligned triplets) and this many pairs to become a segment
    #: (4 pairs since the third pass: +1 pitch-shifted tuning target, no tuning negative gained any score).
    min_run_evidence: float = 4.0
    min_run_distinct: int = 4
    #: A run whose span holds fewer triplets per second than this (on either side) is low-information
    #: (white/pink noise: 2.5-3.6/s; music and speech: 25-70/s) and never evidence.
    #: The evidence values below were calibrated on the benchmark's tuning split (bench/audio/REPORT.md).
    min_hash_rate_per_s: float = 10.0
    #: ... unless the span is tonal on both sides: its 64 ms sustain maxima continue from the row before in at
    #: least this share of rows (noise: 0-2%; the sparse music passages of the tuning split: 36-84%, a plucked
    #: track of the evaluation split 20-29%; see ``shared/kinds/audio/tonal.py``), and it still holds this
    #: many triplets per second.
    min_continued_share: float = 0.10
    min_tonal_hash_rate_per_s: float = 1.0
    #: Runs whose aligned share of the triplets in their span is below this are discounted proportionally.
    full_density: float = 0.03
    #: Evidence that gives a score of 1 - 1/e (0.63); the default threshold 0.5 is 0.69 of it.
    evidence_scale: float = 10.0
    #: Evidence per 64 ms frame row of a run's segment that agrees in loudness and spectral shape, beyond the
    #: chance share (``audio.match.ROW_CHANCE``): 0.08 gives up to 1.0 per second. It only adds to a run that
    #: the triplets found; silence, tones and noise never make one. 0 turns it off.
    row_evidence: float = 0.08
    #: Evidence per agreeing row above chance for an alignment that the frame rows found alone, with no triplet
    #: run (``shared/kinds/audio/row_lines.py``: sparse and quiet passages after a codec or noise). 0 turns the
    #: stage off.
    row_line_evidence: float = 0.3


@dataclass(frozen=True)
class VideoSettings:
    match_threshold: float = 0.50
    max_duration_s: float = 4 * 3600.0
    max_pixels_per_frame: int = 8192 * 4320
    min_segment_s: float = 2.0
    sample_fps: float = 2.0
    #: Two frame hashes (224 bits) at most this far apart count as the same picture.
    max_distance_bits: int = 56
    #: Candidate pairs must first be this close on the hash's 64 lowest-frequency bits (a fast prefilter,
    #: ``shared.align.hamming_matches``); unrelated frames sit near 32 there.
    prefilter_max_distance_bits: int = 20
    #: A sample's partners (for the distinctiveness weighting of votes) are the samples of the other video
    #: within this many bits of its best match; see ``shared.align.hamming_matches``.
    distinct_margin_bits: int = 4
    #: A segment must show at least this many different pictures on each side (a still shot, title card or
    #: fade is one picture however long it lasts), so shared static content never makes a segment.
    min_run_distinct: int = 2
    #: Aligned samples further apart than this (black or blank frames not counted) split a segment.
    max_gap_s: float = 3.0
    #: Crop rescue (``shared.kinds.video.compare``): when the whole-frame hashes give no match, look again on
    #: their 64 lowest-frequency bits only, which survive a mild off-centre crop (a 10% crop leaves them 11-18
    #: bits apart, where the 224 bits are at chance). Pairs within ``rescue_max_distance_bits`` of those 64,
    #: partners within ``rescue_distinct_margin_bits`` of the best, gaps of at most ``rescue_max_gap_s``;
    #: a rescued run needs ``rescue_min_aligned`` aligned samples and ``rescue_min_votes`` votes (the
    #: aligner's usual 1.5 would let through a 1.64-vote run of the enlarged negative set). 1.7 was read off
    #: that set (3,872 pairs) and checked on a fresh one (5,287 pairs, ``bench/video/fresh_negatives.py``):
    #: there it leaves 1 rescued false match of the 2 that 1.5 gives, at 1.93 votes, above the weakest
    #: needed rescue (``t13_0_short``, 1.75). So the vote count lowers the rescue's false matches but does
    #: not separate them; ``bench/video/REPORT.md`` has the numbers.
    crop_rescue: bool = True
    rescue_max_distance_bits: int = 16
    rescue_distinct_margin_bits: int = 2
    rescue_max_gap_s: float = 1.0
    rescue_min_aligned: int = 5
    rescue_min_votes: float = 1.7
    #: A run starting within ``intro_outro_tolerance_s`` of where both videos' pictures start (or ending
    #: where both end), at most ``intro_outro_max_s`` long and covering at most half of each video, is a
    #: shared intro, title card or end screen, not a match (``shared.kinds.video.compare``); 0 turns it off.
    intro_outro_max_s: float = 10.0
    intro_outro_tolerance_s: float = 1.0
    #: Let the decoder drop non-reference frames (about 1.8x faster on H.264 with B-frames); decoding
    #: falls back to every frame when too few remain per sample.
    skip_nonref_frames: bool = True
    #: Also fingerprint the soundtrack with the audio kind (about 500 B/s more, ~1% more time) to report
    #: ``details.audio_similarity``; the visual match never depends on it. Off for catalog-only use.
    audio_similarity: bool = True


@dataclass(frozen=True)
class QueueSettings:
    #: Empty means embedded: an on-disk broker under the data dir.
    broker_url: str = ""
    #: Queue per media kind; point two kinds at one queue, or at cpu/gpu queues, to route differently.
    image_queue: str = "image"
    audio_queue: str = "audio"
    video_queue: str = "video"
    control_queue: str = "control"
    image_soft_time_limit_s: int = 60
    audio_soft_time_limit_s: int = 900
    video_soft_time_limit_s: int = 1800
    #: The hard limit is the soft limit plus this grace.
    hard_time_limit_grace_s: int = 30
    #: How long a synchronous request waits before answering 202.
    sync_wait_s: float = 25.0
    #: A running job writes a heartbeat this often; one silent for ``stale_after_s`` is requeued.
    heartbeat_s: float = 5.0
    stale_after_s: float = 120.0
    #: A job whose worker died this many times is failed with ``worker_lost`` instead of requeued.
    max_attempts: int = 3
    #: How often the maintenance loop (requeue stale jobs, due webhooks, retention) runs in each worker.
    maintenance_interval_s: float = 5.0
    #: Retries for transient fetch errors, with exponential backoff from this base.
    fetch_retries: int = 3
    fetch_retry_backoff_s: float = 2.0

    def queue_for(self, kind: str) -> str:
        return str(getattr(self, f"{kind}_queue", self.control_queue))

    def soft_limit_s(self, kind: str) -> int:
        return int(getattr(self, f"{kind}_soft_time_limit_s", 300))

    def visibility_timeout_s(self) -> int:
        """Longer than the longest task, so Redis never redelivers a task that is still running."""
        longest = max(self.image_soft_time_limit_s, self.audio_soft_time_limit_s, self.video_soft_time_limit_s)
        return 2 * (longest + self.hard_time_limit_grace_s)


@dataclass(frozen=True)
class WebhookSettings:
    timeout_s: float = 10.0
    #: Delay before retry n is ``base * factor**n`` (capped, with full jitter); the defaults span > 1 day.
    retry_base_s: float = 5.0
    retry_factor: float = 3.0
    retry_max_delay_s: float = 6 * 3600.0
    max_attempts: int = 18
    #: Replay window a receiver should accept; used by ``verify``.
    tolerance_s: int = 300
    #: Signing secret for jobs made without an API key (only when ``api.require_api_key`` is off).
    secret: str = ""


@dataclass(frozen=True)
class StoreSettings:
    #: SQLAlchemy URL. Empty means a SQLite file under the data dir.
    database_url: str = ""
    retention_days: float = 30.0


@dataclass(frozen=True)
class ApiSettings:
    require_api_key: bool = True
    #: Flask-Limiter syntax, applied per API key.
    rate_limit: str = "600/minute"
    max_upload_bytes: int = 512 * MB
    max_batch_items: int = 100_000
    max_manifest_bytes: int = 64 * MB
    page_size_max: int = 1000


@dataclass(frozen=True)
class IndexSettings:
    #: Catalog shards. With more than one, a search scatters to one queue per shard
    #: (``<shard_queue_prefix>-<n>``), each served by its own workers, and gathers the top K.
    shards: int = 1
    shard_queue_prefix: str = "shard"
    #: At least this many candidates from an index are compared in full per search.
    min_candidates: int = 200
    #: Threads one image search's word scan uses (``shared/index/image_words.py``: the same hits, split
    #: over the query's lists). 1 suits a worker whose processes already fill the cores (Celery's
    #: concurrency); what 2 gain on an idle box is measured there. Not part of what an index is built with
    #: (snapshots ignore it).
    search_threads: int = 1
    #: Image index (``shared/index/image.py``). Every item whose dihedral hash is within this many bits of
    #: the query's is a candidate, exactly (31 bits = a global score of 0.80, the default threshold;
    #: at most 47).
    image_hash_radius_bits: int = 31
    #: Local-feature stage: keypoints indexed per item (of up to 256), the bits of the 64-bit posting code
    #: a query descriptor may differ in, the votes an item needs, the vocabulary cells per descriptor half
    #: a query descriptor looks in, and how many items it proposes a tier (``ImageIndex.candidate_tiers``):
    #: the first tier is always compared, each later one only while a recent one held a match, up to
    #: ``image_local_candidates_max`` in all (a cluster of copies of the query's picture is compared whole).
    image_local_keypoints: int = 256
    image_code_max_bits: int = 10
    image_local_min_votes: int = 3
    image_query_cells_per_half: int = 2
    #: A query descriptor half's second cell is probed only within this many bits of its nearest (64: always).
    #: 2 scans ~20% fewer postings: at 10^6 items the search's p50 was 14% lower, but Recall@10 was 2,853
    #: against 2,855 of 2,903 and a generated crop no longer found its screenshot in a unit test, so the
    #: default keeps every probe (``bench/catalog/image/REPORT.md``, 2026-11-28 05:00).
    image_query_cell_slack_bits: int = 64
    #: The word stage ranks its candidates by hits weighted exp(-(d / sigma)^2) by their code distance d
    #: (Hamming-embedding weighting, Jegou et al.); 0: every hit counts 1. 8 was chosen on the catalog
    #: benchmark's tuning side (``shared/index/image_words.py``).
    image_code_weight_sigma_bits: float = 8.0
    image_local_candidates: int = 8
    #: Query expansion (Chum et al., "Total Recall", ICCV 2007): when a tier of the local stage holds matches,
    #: the items within 15 bits of the first of them (up to this many a query) are compared next, so a crop
    #: that found one copy of a picture finds the catalog's other copies too. 0 turns it off.
    image_expand_from_matches: int = 4
    image_local_candidates_max: int = 64
    #: Dry tiers (no match) tolerated after a tier that held one before the search stops: a copy ranked one
    #: tier past its cluster (a crop among look-alikes) is still compared. A query matching nothing still
    #: costs the first tier only.
    tier_patience: int = 1
    #: Stop words: a visual word holding more than this many times the mean postings per word is skipped
    #: at query time (flat patches and grid corners; they vote for everything and their lists are the slowest
    #: to scan). 0 turns the stop list off.
    image_stop_word_factor: float = 20.0
    #: Catalogs (or shards) with at most this many items compare every item: exact, and still cheap.
    image_exhaustive_below: int = 32
    #: Replica snapshots (``shared/index/snapshot.py``, under ``data_dir/snapshots``): a replica writes one
    #: after a refresh once ``snapshot_min_changes`` item changes, and ``snapshot_change_fraction`` of its
    #: items, were applied since the last; a restarted worker resumes from it and replays only the change
    #: log after it. False: every new replica replays the whole log.
    snapshots: bool = True
    snapshot_min_changes: int = 1000
    snapshot_change_fraction: float = 0.1
    #: Video index (``shared/index/video.py``): an item is a candidate when at least this many query frames pair
    #: with it at one offset (a run needs two: ``align_runs`` asks 1.5 votes of at most 1 each).
    video_min_pairs: int = 2
    #: ... and at most this many candidates, the strongest, go to the full compare (20-40 ms each for a 30 s clip).
    video_max_candidates: int = 16
    #: Nearest frame codes looked at per query frame (and per mirrored query frame).
    video_neighbours_per_frame: int = 256
    #: Audio index (``shared/index/audio.py``): an item is a candidate when at least this many query triplets
    #: vote for one alignment cell (the compare's Hough asks 3 weighted votes, a run 5 distinct pairs) ...
    audio_min_votes: int = 3
    #: ... and at most this many candidates, the strongest, go to the full compare.
    audio_max_candidates: int = 64


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    redis_url: str = ""
    fetch: FetchSettings = field(default_factory=FetchSettings)
    image: ImageSettings = field(default_factory=ImageSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    video: VideoSettings = field(default_factory=VideoSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    index: IndexSettings = field(default_factory=IndexSettings)

    # -- derived values -------------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        return not (self.queue.broker_url or self.redis_url)

    def broker_url(self) -> str:
        if self.queue.broker_url:
            return self.queue.broker_url
        return self.redis_url or "filesystem://"

    def database_url(self) -> str:
        if self.store.database_url:
            return self.store.database_url
        return f"sqlite:///{(self.data_dir / 'mediamatch.sqlite3').resolve()}"

    def rate_limit_storage_uri(self) -> str:
        return self.redis_url or "memory://"

    def threshold_for(self, kind: str) -> float:
        return float(getattr(self, kind).match_threshold)

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        top: dict[str, Any] = {}
        if "MEDIAMATCH_DATA_DIR" in env:
            top["data_dir"] = Path(env["MEDIAMATCH_DATA_DIR"])
        if env.get("REDIS_URL"):
            top["redis_url"] = env["REDIS_URL"]
        for f in dataclasses.fields(cls):
            section_cls = _section_type(f)
            if section_cls is None:
                continue
            values = {}
            hints = typing.get_type_hints(section_cls)
            for sf in dataclasses.fields(section_cls):
                name = f"MEDIAMATCH_{f.name}_{sf.name}".upper()
                if name in env:
                    values[sf.name] = _parse(name, env[name], hints[sf.name])
            if f.name == "store" and env.get("DATABASE_URL") and "database_url" not in values:
                values["database_url"] = env["DATABASE_URL"]
            top[f.name] = section_cls(**values)
        settings = cls(**top)
        settings.validate()
        return settings

    def to_env(self) -> dict[str, str]:
        """The environment that ``from_env`` turns back into these settings (for child processes)."""
        env = {"MEDIAMATCH_DATA_DIR": str(self.data_dir)}
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if not dataclasses.is_dataclass(section):
                continue
            for sf in dataclasses.fields(section):
                value = getattr(section, sf.name)
                text = ",".join(value) if isinstance(value, tuple) else str(value).lower() if isinstance(value, bool) else str(value)
                env[f"MEDIAMATCH_{f.name}_{sf.name}".upper()] = text
        return env

    def validate(self) -> None:
        for kind in ("image", "audio", "video"):
            t = self.threshold_for(kind)
            if not 0.0 <= t <= 1.0:
                raise InvalidSettings(f"{kind}.match_threshold must be in [0, 1], got {t}")
        for net in self.fetch.allow_networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise InvalidSettings(f"fetch.allow_networks: {net!r} is not a CIDR block") from exc
        if self.fetch.max_redirects < 0 or self.fetch.max_redirects > 10:
            raise InvalidSettings("fetch.max_redirects must be between 0 and 10")
        if self.queue.sync_wait_s < 0:
            raise InvalidSettings("queue.sync_wait_s must be >= 0")
        if not 0 <= self.index.image_query_cell_slack_bits <= 64:
            raise InvalidSettings("index.image_query_cell_slack_bits must be between 0 and 64")
        if self.index.image_expand_from_matches < 0:
            raise InvalidSettings("index.image_expand_from_matches must be >= 0")
        if not 0 <= self.index.image_code_weight_sigma_bits <= 64:
            raise InvalidSettings("index.image_code_weight_sigma_bits must be between 0 and 64")
        if not 1 <= self.index.search_threads <= 64:
            raise InvalidSettings("index.search_threads must be between 1 and 64")
        if not 1 <= self.index.shards <= 1024:
            raise InvalidSettings("index.shards must be between 1 and 1024")
        if self.index.snapshot_min_changes < 1 or self.index.snapshot_change_fraction < 0:
            raise InvalidSettings("index.snapshot_min_changes must be >= 1 and index.snapshot_change_fraction >= 0")


def _section_type(f: dataclasses.Field[Any]) -> type | None:
    hints = typing.get_type_hints(Settings)
    t = hints[f.name]
    return t if dataclasses.is_dataclass(t) and isinstance(t, type) else None


def _parse(name: str, raw: str, t: Any) -> Any:
    try:
        if t is bool:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if t in (int, float, str):
            return t(raw)
        if typing.get_origin(t) is tuple:
            return tuple(x.strip() for x in raw.split(",") if x.strip())
    except ValueError as exc:
        raise InvalidSettings(f"{name}={raw!r} is not a valid {getattr(t, '__name__', t)}") from exc
    raise InvalidSettings(f"{name}: unsupported setting type {t}")

