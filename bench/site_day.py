"""A day on a small video site, priced with the unit costs this run measured on the real stack.

The day's events are drawn from a seed (``draw_day``, parameters in ``bench.site_day_params``): uploads
of varied lengths, first-day views per upload by a Zipf law, view arrival times decaying after upload,
the share of each video a viewer watches, new and returning devices, malicious viewers, flagged uploads,
each upload's uploader record and coverage deadline from the uploader mix. ``simulate`` applies the trust
rules as the code applies them today (its docstring lists them; the settings come from the running site, the rest of the
policy from ``SiteDayParams``) and prices every event with a cost measured in this run
(``bench.hydra_path.component_costs``): no cost here is a constant. The same drawn day, scaled down, is
driven through the real servers by ``bench.site_day_replay``, which checks this model against them.

What this is not: the interactions between events (queueing, a settlement pass shared by many viewers)
are those of the component runs, not of this day's timing; the hidden seeker's Range requests are priced,
not timed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from bench.site_day_params import SiteDayParams
from inference.trust.assignment import Identity, spread_audience
from inference.trust.spot_checks import SpotCheckPolicy

DAY_S = 24 * 3600


@dataclass(frozen=True)
class UnitCosts:
    """Server CPU ms per event (measured) and bytes per hidden-seeker fetch."""

    connection: float
    message: float
    settlement_per_feature: float
    spot_check: float
    fallback_frame: float
    range_request: float
    extra_viewer: float
    server_only_frame: float
    range_bytes: float
    # One analysis of a video (heads and verdicts, worker CPU): every settlement pass that accepts features and
    # every recomputation pass runs one (defence 9). ``settlement_per_feature`` excludes it.
    analysis: float = 0.0


@dataclass(frozen=True)
class TrustRules:
    """The product's settings that decide who computes what (read from the running site, never changed here)."""

    replicas: int
    min_assignment: int
    probation_results: int
    spot_check_floor: float
    coverage_deadline_s: float
    sample_interval_ms: int
    max_duration_s: float
    rate_per_second: float
    burst: int
    client_batch: int
    audit_rate: float  # share of a covered video's page views that analyse (the others open no socket)
    # Read since the small-audience rule was modelled; results recorded before carry none of these.
    coverage_slack_s: float = 60.0
    server_seconds_per_sample: float = 0.25
    min_audience: int = 5
    arrival_window_s: float = 60.0
    record_per_day: float = 10.0
    # Read since probation by replicas and the uploader's deadline were modelled; earlier results carry none of
    # these, and the defaults are the site's.
    probation_checks: int = 5
    probation_check_rate: float = 0.25
    coverage_max_deadline_s: float = 6 * 3600.0
    coverage_seconds_per_clean_upload: float = 900.0
    uploader_record_per_day: int = 3
    coverage_audience_views: int = 10


# Reasons whose events are frames the server's CNN computes.
SERVER_FRAME_REASONS = (
    "small_audience",
    "probation",
    "spot_checks_returning",
    "window_guard",
    "nudity_borderline",
    "disputes",
    "fallback_unwatched",
    "fallback_partly_covered",
    "flag_confirmation",
)
# Every reason the server spends CPU for on the day: sockets, storage and media, then the server's frames.
REASONS = (
    "handshakes",
    "messages",
    "settlement",
    "analysis",
    *SERVER_FRAME_REASONS,
    "extra_viewers",
    "media_range_requests",
)


@dataclass(frozen=True)
class Visit:
    """One viewer's arrival at an upload, seconds after it became ready."""

    arrival_s: float
    new_device: bool
    malicious: bool
    watched_share: float


@dataclass(frozen=True)
class Upload:
    length_s: float
    samples: int
    flagged: bool
    uploader_record: int  # clean uploads counted when it became ready (0 for a new uploader or one under review)
    deadline_s: float  # coverage deadline from the record (``coverage_deadline_for``), before any pull-back
    visits: tuple[Visit, ...]  # in arrival order, the whole day


def _zipf_views(rng: np.random.Generator, params: SiteDayParams) -> np.ndarray:
    ranks = rng.permutation(params.uploads) + 1
    weights = ranks.astype(float) ** -params.zipf_exponent
    expected = params.uploads * params.views_per_upload * weights / weights.sum()
    return rng.poisson(expected)


def coverage_deadline_for(record: int, rules: TrustRules) -> float:
    """Seconds after it is ready an upload may wait for coverage (``moderation.services.coverage_deadline_seconds``)."""
    grown = rules.coverage_deadline_s + record * rules.coverage_seconds_per_clean_upload
    return max(rules.coverage_deadline_s, min(grown, rules.coverage_max_deadline_s))


def uploader_records(
    ready_s: np.ndarray, flagged: np.ndarray, params: SiteDayParams, rules: TrustRules
) -> tuple[list[int], list[float]]:
    """Each upload's uploader record and coverage deadline, from the uploader mix.

    The day's uploads fall to uploaders making 1 + Poisson(``uploads_per_uploader`` - 1) uploads each; an
    uploader is established with ``established_uploader_share`` (by upload, in expectation), its record then
    ``established_uploader_record_days`` days at today's rate, at most ``uploader_record_per_day`` a day. An
    earlier upload of the day adds one when its deadline has passed before the later one is ready (the server
    has covered it by then) and it was not flagged, at most ``uploader_record_per_day`` today. A flagged upload
    opens a case: it and the uploader's later uploads of the day get the base (a case is active; assumed to
    stay so for the day). Drawn from a stream of its own so that the day's views do not change with the mix.
    """
    rng = np.random.default_rng([params.seed, 1])
    order = rng.permutation(len(ready_s))
    records = [0] * len(ready_s)
    deadlines = [rules.coverage_deadline_s] * len(ready_s)
    cap = rules.uploader_record_per_day
    start = 0
    while start < len(order):
        count = 1 + int(rng.poisson(max(0.0, params.uploads_per_uploader - 1)))
        mine = sorted(order[start : start + count], key=lambda video: ready_s[video])
        start += count
        established = rng.random() < params.established_uploader_share
        prior = params.established_uploader_record_days * min(len(mine), cap) if established else 0
        for index, video in enumerate(mine):
            earlier = mine[:index]
            if flagged[video] or any(flagged[other] for other in earlier):
                continue  # a case is active on one of the uploader's videos: the base
            today = sum(1 for other in earlier if ready_s[other] + deadlines[other] <= ready_s[video])
            records[video] = prior + min(today, cap)
            deadlines[video] = coverage_deadline_for(records[video], rules)
    return records, deadlines


def draw_day(params: SiteDayParams, rules: TrustRules) -> list[Upload]:
    """The day's events from the seed: the model prices them, the replay drives them through the real stack."""
    rng = np.random.default_rng(params.seed)
    interval_s = rules.sample_interval_ms / 1000
    lengths = np.minimum(
        rng.lognormal(math.log(params.length_median_s), params.length_sigma, params.uploads), rules.max_duration_s
    )
    views = _zipf_views(rng, params)
    flagged = rng.random(params.uploads) < params.flagged_share
    ready_s = rng.random(params.uploads) * DAY_S  # when each upload became ready, for its uploader's record
    records, deadlines = uploader_records(ready_s, flagged, params, rules)
    uploads = []
    for video in range(params.uploads):
        arrivals = np.sort(rng.exponential(params.view_decay_hours * 3600, views[video]))
        arrivals = arrivals[arrivals < DAY_S]
        visits = tuple(
            Visit(
                arrival_s=float(at),
                new_device=bool(rng.random() < params.new_device_share),
                malicious=bool(rng.random() < params.malicious_share),
                watched_share=float(rng.beta(params.watch_beta_a, params.watch_beta_b)),
            )
            for at in arrivals
        )
        uploads.append(
            Upload(
                length_s=float(lengths[video]),
                samples=max(1, math.ceil(lengths[video] / interval_s)),
                flagged=bool(flagged[video]),
                uploader_record=records[video],
                deadline_s=deadlines[video],
                visits=visits,
            )
        )
    return uploads


def countdown_s(upload: Upload, rules: TrustRules, deadline_s: float | None = None) -> float:
    """When the server starts covering the upload's gaps (``inference.trust.services.coverage_countdown_seconds``)."""
    due = upload.deadline_s if deadline_s is None else deadline_s
    return max(0.0, due - rules.coverage_slack_s - upload.samples * rules.server_seconds_per_sample)


def small_audience(established_arrivals: list[float], rules: TrustRules) -> bool:
    """Defence 12 (``verification.audience_is_small``), every viewer on its own device and network."""
    identities = [(at, Identity(session_id=str(i), network=str(i))) for i, at in enumerate(established_arrivals)]
    return spread_audience(identities, rules.arrival_window_s) < rules.min_audience


def deliverable(visit: Visit, upload: Upload, rules: TrustRules, params: SiteDayParams) -> int:
    """Samples the viewer's browser computes while it stays (within the socket's rate limit)."""
    watched_s = upload.length_s * visit.watched_share
    computed = watched_s * 1000 / params.browser_ms_per_frame
    return int(min(computed, (rules.burst + rules.rate_per_second * watched_s) * rules.client_batch))


def simulate(costs: UnitCosts, rules: TrustRules, params: SiteDayParams | None = None, **overrides) -> dict[str, Any]:
    """The day's server CPU by reason, for Hydra and for the fair server-only path, and the bytes.

    What each trust rule charges (docs/trust.md's defences, as the code applies them today):
    assignment (1) hands a viewer every sample still short of an independent quorum, topped up to the
    minimum; ``replicas`` honest viewers' agreement is accepted when the audience is small (12: fewer than
    ``min_audience`` established viewers who arrived ``arrival_window_s`` apart; the server then computes it),
    else only beside an established device (4, probation by replicas: a device new today has no record, since a
    record grows at most ``record_per_day`` a day and once per video; newcomers' agreement alone waits for an
    established replica or the deadline); an accepted sample is spot-checked at the established holder's rate
    (11), and each new device among its holders gets a probation draw, at most one check per device, video and
    pass at ``probation_check_rate`` per accepted sample, at most ``probation_checks`` over its life; a nudity
    score near the threshold (10) is computed instead of accepted; with the violence head active the window
    guard (10) computes every accepted sample of a borderline window (both borderline rules only while
    ``borderline_rules_despite_quorum``); a liar's delivered batch is disputed, computed with the honest
    paintings (3) and the liar quarantined (6); at the countdown (7) of the upload's deadline, drawn from its
    uploader's record (``uploader_records``) and pulled back to the base when ``coverage_audience_views`` views
    arrive before it is covered, the server computes every sample still unsettled; a flagged verdict (5) has
    the server compute its flagged samples; a covered video's page analyses only on an audit draw.
    """
    params = replace(params or SiteDayParams(), **overrides)
    policy = SpotCheckPolicy(
        probation=rules.probation_results,
        floor=rules.spot_check_floor,
        probation_checks=rules.probation_checks,
        probation_rate=rules.probation_check_rate,
    )
    returning_rate = policy.rate(params.returning_record)
    borderline_share = params.nudity_borderline_share if params.borderline_rules_despite_quorum else 0.0
    guard_share = params.window_guard_share if params.violence_head_active else 0.0
    guard_share = guard_share if params.borderline_rules_despite_quorum else 0.0
    interval_s = rules.sample_interval_ms / 1000
    cpu = Counter({reason: 0.0 for reason in REASONS})
    frames = Counter({reason: 0.0 for reason in SERVER_FRAME_REASONS})
    events = Counter()
    visits = Counter()
    deadlines = Counter()
    watched_cpu = 0.0
    samples_all = samples_watched_videos = samples_unwatched = 0
    range_fetches = 0.0

    def compute(reason: str, count: float, unit: float) -> float:
        frames[reason] += count
        cpu[reason] += count * unit
        return count

    def analyse(frames_computed: float = 1.0) -> None:
        """A settlement pass that accepted features, or a recomputation pass: each re-runs the analysis."""
        if frames_computed > 0:
            events["analyses"] += 1
            cpu["analysis"] += costs.analysis

    analysing_visits: list[list[int]] = []  # per upload, the visits whose page analyses (the replay drives them)
    for upload in draw_day(params, rules):
        analysing_visits.append([])
        samples = upload.samples
        samples_all += samples
        start = countdown_s(upload, rules)
        deadlines["uploads"] += 1
        deadlines["at_base"] += upload.deadline_s <= rules.coverage_deadline_s
        deadlines["at_cap"] += upload.deadline_s >= rules.coverage_max_deadline_s
        deadlines["sum_s"] += upload.deadline_s
        before = sum(cpu.values())
        holders = np.zeros(samples, dtype=int)  # honest replicas delivered, not yet accepted or computed
        vouched = np.zeros(samples, dtype=bool)  # an established device among them
        newcomers: dict[int, list[int]] = {}  # sample -> the new devices (by visit) among its holders
        # Probation checks drawn per new device (expected), against its lifetime budget. The model knows a device
        # only by its visit: each new-device visit is a device of its own, first seen that day on this upload.
        device_checks: Counter = Counter()
        settled = np.zeros(samples, dtype=bool)  # accepted, or computed by the server
        peer_only = 0.0  # accepted samples the server has not computed (expected count)
        established: list[float] = []
        analysing = 0
        late = 0
        for index, visit in enumerate(upload.visits):
            if visit.arrival_s >= start or settled.all():
                late += 1  # a covered video: the page analyses only on an audit draw
                continue
            if index + 1 == rules.coverage_audience_views:
                # Its views reached the audience mark uncovered: due at the base, or now if that has passed
                # (``moderation.services``; the sweep's period is not modelled). This visit still analyses.
                pulled = countdown_s(upload, rules, max(visit.arrival_s, rules.coverage_deadline_s))
                if pulled < start:
                    start = pulled
                    deadlines["pulled_back_by_audience"] += 1
            visits["analysing"] += 1
            analysing += 1
            analysing_visits[-1].append(index)
            open_samples = np.flatnonzero(~settled)
            assigned = max(len(open_samples), min(rules.min_assignment, samples))
            delivered = min(assigned, deliverable(visit, upload, rules, params))
            cpu["handshakes"] += costs.connection
            events["messages"] += math.ceil(delivered / rules.client_batch)
            cpu["messages"] += math.ceil(delivered / rules.client_batch) * costs.message
            cpu["settlement"] += delivered * costs.settlement_per_feature
            seeker = max(0, delivered - int(upload.length_s * visit.watched_share / interval_s))
            range_fetches += seeker
            cpu["media_range_requests"] += seeker * costs.range_request
            if visit.malicious:
                # Its batch disagrees with the first honest replica or the server: computed, then quarantined.
                visits["malicious"] += 1
                lied = min(delivered, rules.client_batch)
                analyse(compute("disputes", lied, costs.spot_check * params.dispute_frame_spot_checks))
                continue
            visits["new_device" if visit.new_device else "returning_device"] += 1
            if not visit.new_device:
                established.append(visit.arrival_s)
            mine = open_samples[:delivered]
            holders[mine] += 1
            if visit.new_device:
                for sample in mine:
                    newcomers.setdefault(int(sample), []).append(index)
            else:
                vouched[mine] = True
            small = small_audience(established, rules)
            # Probation by replicas (defence 4): newcomers' agreement counts only beside an established device,
            # or where the server computes every agreed sample anyway (the small audience); otherwise it waits.
            quorum = mine[holders[mine] >= rules.replicas]
            accepted = quorum if small else quorum[vouched[quorum]]
            if not len(accepted):
                continue
            settled[accepted] = True
            count = float(len(accepted))
            analyse()  # the settlement pass that accepted them
            # One recomputation pass takes whatever this visit's acceptances sent to the server.
            computed = compute("nudity_borderline", count * borderline_share, costs.spot_check)
            agreed = 1.0 - borderline_share
            if small:
                analyse(computed + compute("small_audience", count * agreed, costs.spot_check))
                continue
            # The established holders' rate per sample, and each newcomer's probation draw: at most one check per
            # record, video and pass, at the probation rate per accepted sample, while its budget lasts.
            per_newcomer = Counter(device for sample in accepted for device in newcomers.get(int(sample), ()))
            checks = 0.0
            for device, mine_accepted in per_newcomer.items():
                left = max(0.0, rules.probation_checks - device_checks[device])
                drawn = min(left, 1.0 - (1.0 - policy.probation_rate) ** mine_accepted)
                device_checks[device] += drawn
                checks += drawn
            computed += compute("probation", checks * agreed, costs.spot_check)
            computed += compute("spot_checks_returning", count * agreed * returning_rate, costs.spot_check)
            unchecked = max(0.0, count * agreed * (1 - returning_rate) - checks * agreed)
            guarded = unchecked * guard_share
            analyse(computed + compute("window_guard", guarded, costs.spot_check))
            peer_only += unchecked - guarded
        uncovered = float(np.count_nonzero(~settled))
        if analysing:
            samples_watched_videos += samples
            analyse(compute("fallback_partly_covered", uncovered, costs.fallback_frame))
        else:
            samples_unwatched += samples
            analyse(compute("fallback_unwatched", uncovered, costs.fallback_frame))
        if upload.flagged:
            # The flagged segment's samples (``confirm_flag_with_server``) the server has not computed yet.
            flagged_samples = min(samples, math.ceil(params.flagged_segment_s / interval_s))
            analyse(compute("flag_confirmation", flagged_samples * peer_only / samples, costs.fallback_frame))
        visits["after_coverage"] += late
        cpu["extra_viewers"] += late * costs.extra_viewer
        # Only an audit draw analyses on a covered video; its top-up samples are rarely the ones being watched.
        extra_seeks = late * rules.audit_rate * rules.min_assignment
        range_fetches += extra_seeks
        cpu["media_range_requests"] += extra_seeks * costs.range_request
        if analysing:
            watched_cpu += sum(cpu.values()) - before
    hydra_ms = sum(cpu.values())
    server_only_ms = samples_all * costs.server_only_frame
    watched_server_only_ms = samples_watched_videos * costs.server_only_frame
    egress = range_fetches * costs.range_bytes
    server_frames = sum(frames.values())
    return {
        "params": asdict(params),
        "rules": asdict(rules),
        "unit_costs_ms": asdict(costs),
        "uploads": params.uploads,
        "samples": samples_all,
        "visits": dict(visits),
        "coverage_deadlines": {
            "uploads_at_base": deadlines["at_base"],
            "uploads_at_cap": deadlines["at_cap"],
            "mean_s": deadlines["sum_s"] / max(1, deadlines["uploads"]),
            "pulled_back_by_audience": deadlines["pulled_back_by_audience"],
        },
        "unwatched_share": samples_unwatched / samples_all,
        "hydra_cpu_ms_by_reason": dict(cpu),
        "server_frames_by_reason": dict(frames),
        "messages": events["messages"],
        "analyses": events["analyses"],
        "hydra_cpu_ms": hydra_ms,
        "server_only_cpu_ms": server_only_ms,
        "hydra_cpu_ms_per_sample": hydra_ms / samples_all,
        "offload_ratio_site_day": server_only_ms / hydra_ms,
        "offload_ratio_watched": watched_server_only_ms / watched_cpu if watched_cpu else None,
        "server_computed_frames_per_sample": server_frames / samples_all,
        "hidden_seeker_fetches": range_fetches,
        "hidden_seeker_egress_bytes": egress,
        "hidden_seeker_egress_bytes_per_sample": egress / samples_all,
        "analysing_visits": analysing_visits,
    }


def money_per_frame(day: dict[str, Any], params: SiteDayParams | None = None) -> dict[str, Any]:
    """Dollars per analysed frame at the stated prices: server-only (CPU) and Hydra (CPU + hidden-seeker egress)."""
    params = params or SiteDayParams()
    per_ms = params.vcpu_hour_usd / 3_600_000
    per_byte = params.egress_gb_usd / 1e9
    costs = day["unit_costs_ms"]
    hydra_cpu = day["hydra_cpu_ms_per_sample"] * per_ms
    hydra_egress = day["hidden_seeker_egress_bytes_per_sample"] * per_byte
    return {
        "prices": {"vcpu_hour_usd": params.vcpu_hour_usd, "egress_gb_usd": params.egress_gb_usd},
        "server_only_usd": costs["server_only_frame"] * per_ms,
        "hydra_usd": hydra_cpu + hydra_egress,
        "hydra_cpu_usd": hydra_cpu,
        "hydra_egress_usd": hydra_egress,
        "capture_paths": {
            "played_frame": {"extra_bytes": 0, "extra_usd": 0.0},
            "hidden_seeker_frame": {
                "extra_bytes": costs["range_bytes"],
                "extra_usd": costs["range_bytes"] * per_byte + costs["range_request"] * per_ms,
            },
        },
    }


def projection(
    day: dict[str, Any], peak_rss_mb: dict[str, float | None], params: SiteDayParams | None = None
) -> dict[str, Any]:
    """Cores (and memory at the measured peak RSS per busy core) to analyse ``upload_hours_per_minute``.

    Assumes the site-day mix holds at scale and CPU scales linearly (no batching gains, no
    contention): a first-order projection from unit costs, not a measurement.
    """
    params = params or SiteDayParams()
    samples_per_s = params.upload_hours_per_minute * 3600 / 60 / (day["rules"]["sample_interval_ms"] / 1000)
    server_only_cores = samples_per_s * day["unit_costs_ms"]["server_only_frame"] / 1000
    hydra_cores = samples_per_s * day["hydra_cpu_ms_per_sample"] / 1000

    def memory_gib(cores: float, mb: float | None) -> float | None:
        return cores * mb / 1024 if mb else None

    return {
        "upload_hours_per_minute": params.upload_hours_per_minute,
        "samples_per_s": samples_per_s,
        "server_only_cores": server_only_cores,
        "hydra_cores": hydra_cores,
        "server_only_memory_gib": memory_gib(server_only_cores, peak_rss_mb.get("server_only")),
        "hydra_memory_gib": memory_gib(hydra_cores, peak_rss_mb.get("hydra")),
        "hidden_seeker_egress_gbit_per_s": samples_per_s * day["hidden_seeker_egress_bytes_per_sample"] * 8 / 1e9,
        "assumptions": "site-day mix at scale; linear CPU; one process of the measured peak RSS per busy core",
    }
