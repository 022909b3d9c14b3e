"""A day on a small video site, priced with the unit costs this run measured on the real stack.

The day's events are drawn from a seed (``bench.site_day_params``): uploads of varied lengths,
first-day views per upload by a Zipf law, view arrival times decaying after upload, the share of
each video a viewer watches, new and returning devices, malicious viewers, flagged uploads.
Each viewer who arrives before the coverage deadline is handed what the trust layer would hand
it (``inference.trust.assignment.plan_assignment``'s rule, applied here to counts: every sample
still short of replicas, topped up to the minimum) and delivers what its browser computes while it
stays (within the socket's rate limit); samples outside the stretch it watches come through the hidden seeker
(one Range request and one second of rendition each). At the deadline the server computes every
sample still short of replicas (the fallback). Later viewers are extra viewers of a covered video.

Every event is priced with a cost measured in this run (``bench.hydra_path.component_costs``):
no cost here is a constant. What this is not: a replay of the day on the real servers; the
interactions between events (queueing, a settlement pass shared by many viewers) are those of the
component runs, not of this day's timing.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from bench.site_day_params import SiteDayParams

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


REASONS = (
    "handshakes",
    "messages",
    "settlement",
    "spot_checks_returning",
    "probation",
    "disputes",
    "fallback_unwatched",
    "fallback_partly_covered",
    "flag_confirmation",
    "extra_viewers",
    "media_range_requests",
)


def _zipf_views(rng: np.random.Generator, params: SiteDayParams) -> np.ndarray:
    ranks = rng.permutation(params.uploads) + 1
    weights = ranks.astype(float) ** -params.zipf_exponent
    expected = params.uploads * params.views_per_upload * weights / weights.sum()
    return rng.poisson(expected)


def simulate(costs: UnitCosts, rules: TrustRules, params: SiteDayParams | None = None, **overrides) -> dict[str, Any]:
    """The day's server CPU by reason, for Hydra and for the fair server-only path, and the bytes."""
    params = replace(params or SiteDayParams(), **overrides)
    rng = np.random.default_rng(params.seed)
    interval_s = rules.sample_interval_ms / 1000
    lengths = np.minimum(
        rng.lognormal(math.log(params.length_median_s), params.length_sigma, params.uploads), rules.max_duration_s
    )
    views = _zipf_views(rng, params)
    flagged = rng.random(params.uploads) < params.flagged_share
    cpu = Counter({reason: 0.0 for reason in REASONS})
    watched_cpu = 0.0
    samples_all = samples_watched_videos = samples_unwatched = 0
    range_fetches = 0
    server_frames = 0.0  # frames the server's CNN computes (spot checks, disputes, fallback, flag confirmation)
    visits = Counter()
    for video in range(params.uploads):
        samples = max(1, math.ceil(lengths[video] / interval_s))
        samples_all += samples
        arrivals = np.sort(rng.exponential(params.view_decay_hours * 3600, views[video]))
        arrivals = arrivals[arrivals < DAY_S]
        early = arrivals[arrivals < rules.coverage_deadline_s]
        before = sum(cpu.values())
        replicas = np.zeros(samples, dtype=int)
        for _ in early:
            visits["before_deadline"] += 1
            new_device = rng.random() < params.new_device_share
            malicious = rng.random() < params.malicious_share
            watched_s = lengths[video] * rng.beta(params.watch_beta_a, params.watch_beta_b)
            needed = int(np.sum(replicas < rules.replicas))
            assigned = max(needed, min(rules.min_assignment, samples))
            # The browser computes while the viewer stays; the socket's limit (messages of up to a batch) rarely binds.
            computed = watched_s * 1000 / params.browser_ms_per_frame
            deliverable = int(min(computed, (rules.burst + rules.rate_per_second * watched_s) * rules.client_batch))
            delivered = min(assigned, deliverable)
            cpu["handshakes"] += costs.connection
            cpu["messages"] += math.ceil(delivered / rules.client_batch) * costs.message
            cpu["settlement"] += delivered * costs.settlement_per_feature
            seeker = max(0, delivered - int(watched_s / interval_s))
            range_fetches += seeker
            cpu["media_range_requests"] += seeker * costs.range_request
            if malicious:
                # Its first batch disagrees with the quorum: the server recomputes it and quarantines the client.
                visits["malicious"] += 1
                cpu["disputes"] += min(delivered, rules.client_batch) * costs.spot_check
                server_frames += min(delivered, rules.client_batch)
                continue
            visits["new_device" if new_device else "returning_device"] += 1
            short = np.flatnonzero(replicas < rules.replicas)[:delivered]
            replicas[short] += 1
            on_probation = min(delivered, rules.probation_results) if new_device else 0
            checked = on_probation + (delivered - on_probation) * rules.spot_check_floor
            server_frames += checked
            cpu["probation"] += on_probation * costs.spot_check
            cpu["spot_checks_returning"] += (checked - on_probation) * costs.spot_check
        uncovered = int(np.sum(replicas < rules.replicas))
        server_frames += uncovered
        if len(early):
            samples_watched_videos += samples
            cpu["fallback_partly_covered"] += uncovered * costs.fallback_frame
        else:
            samples_unwatched += samples
            cpu["fallback_unwatched"] += uncovered * costs.fallback_frame
        if flagged[video]:
            frames = min(lengths[video], params.flagged_segment_s) * params.rendition_fps
            cpu["flag_confirmation"] += frames * costs.fallback_frame
            server_frames += frames
        late = len(arrivals) - len(early)
        visits["after_deadline"] += late
        cpu["extra_viewers"] += late * costs.extra_viewer
        # Only an audit draw analyses on a covered video; its top-up samples are rarely the ones being watched.
        extra_seeks = late * rules.audit_rate * rules.min_assignment
        range_fetches += extra_seeks
        cpu["media_range_requests"] += extra_seeks * costs.range_request
        if len(early):
            watched_cpu += sum(cpu.values()) - before
    hydra_ms = sum(cpu.values())
    server_only_ms = samples_all * costs.server_only_frame
    watched_server_only_ms = samples_watched_videos * costs.server_only_frame
    egress = range_fetches * costs.range_bytes
    return {
        "params": asdict(params),
        "rules": asdict(rules),
        "unit_costs_ms": asdict(costs),
        "uploads": params.uploads,
        "samples": samples_all,
        "visits": dict(visits),
        "unwatched_share": samples_unwatched / samples_all,
        "hydra_cpu_ms_by_reason": dict(cpu),
        "hydra_cpu_ms": hydra_ms,
        "server_only_cpu_ms": server_only_ms,
        "hydra_cpu_ms_per_sample": hydra_ms / samples_all,
        "offload_ratio_site_day": server_only_ms / hydra_ms,
        "offload_ratio_watched": watched_server_only_ms / watched_cpu if watched_cpu else None,
        "server_computed_frames_per_sample": server_frames / samples_all,
        "hidden_seeker_fetches": range_fetches,
        "hidden_seeker_egress_bytes": egress,
        "hidden_seeker_egress_bytes_per_sample": egress / samples_all,
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
