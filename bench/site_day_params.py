"""Every parameter of the site-day model, in one place, each default with where it comes from.

A default is a published figure where one exists (cited), else an assumption said to be one.
Change them here or pass overrides to ``bench.site_day.simulate``; the run records the values used.

Sources:
- [Cha07] M. Cha, H. Kwak, P. Rodriguez, Y.-Y. Ahn, S. Moon, "I Tube, You Tube, Everybody Tubes:
  Analyzing the World's Largest User Generated Content Video System", ACM IMC 2007. Popularity is
  heavy-tailed (power law with a cut-off); most videos are short. The same concentration was reported
  for YouTube in 2006 (WSJ analysis of 5.1 million videos: the top 10 % made 79 % of the plays).
- [McG23] R. McGrady, K. Zheng, R. Curran, J. Baumgartner, E. Zuckerman, "Dialing for Videos: A Random
  Sample of YouTube", Journal of Quantitative Description: Digital Media 3 (2023): in a random sample,
  65 % of videos had fewer than 100 views and 87 % fewer than 1,000 (lifetime).
- [Fin11] A. Finamore, M. Mellia, M. Munafo, R. Torres, S. Rao, "YouTube Everywhere: Impact of Device and
  Infrastructure Synergies on User Experience", ACM IMC 2011: about 60 % of videos are watched for less
  than 20 % of their duration.
- [YT] YouTube's own figure, repeated in its press material since 2019: more than 500 hours of video
  uploaded every minute.
- [Pew19] P. van Kessel, S. Toor, A. Smith, "A Week in the Life of Popular YouTube Channels", Pew Research
  Center, July 2019: of the 43,770 channels with at least 250,000 subscribers, 10 % posted 70 % of the 243,254
  videos of the first week of 2019.
- Prices: AWS list prices, us-east-1, on-demand, as published in 2024 (check before relying on them):
  c7i.large (2 vCPU) $0.08925/hour; data transfer out to the internet, first 10 TB/month, $0.09/GB.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SiteDayParams:
    seed: int = 20261201
    # A small site's day of uploads. Assumption (a size that keeps the model's sampling noise low).
    uploads: int = 400
    # Video length, log-normal: median 3 minutes, sigma 1.0, cut at the site's maximum. Assumption in the
    # range [Cha07] reports for user-generated content (mostly a few minutes).
    length_median_s: float = 180.0
    length_sigma: float = 1.0
    # Views of an upload on its first day: a Zipf law over the day's uploads. Exponent 1.3 puts about
    # 80 % of the views on the top 10 % of uploads ([Cha07], WSJ 2006: 79 %).
    zipf_exponent: float = 1.3
    # Mean first-day views per upload. Assumption for a small site, consistent with [McG23]
    # (two thirds of videos never reach 100 views in their lifetime).
    views_per_upload: float = 8.0
    # Views arrive after upload at a rate decaying exponentially with this mean (hours). Assumption:
    # [Cha07] finds a video's views concentrated early in its life; the day is cut at 24 h.
    view_decay_hours: float = 6.0
    # Fraction of the video a viewer watches: Beta(0.25, 0.7), which puts 59 % of views below 20 %
    # of the duration ([Fin11]: about 60 %) with a mean of 26 %.
    watch_beta_a: float = 0.25
    watch_beta_b: float = 0.7
    # The CNN chunk in a viewer's browser, ms per frame: TF.js wasm on this machine kind (docs/benchmarks.md (3),
    # 50-55 ms when the machine is quiet). Seeking the hidden video is not added: a lower bound on the time.
    browser_ms_per_frame: float = 54.0
    # Share of visits from a device the trust layer has never seen (on probation). Assumption: no
    # published figure for "new device to this site"; web analytics commonly report a third or more.
    new_device_share: float = 0.35
    # Share of visits from malicious clients (the trust harness's liars). Assumption; no published figure.
    malicious_share: float = 0.01
    # Share of uploads whose verdict is flagged, and how long the flagged stretch is. Assumption; no
    # published per-upload figure was found.
    flagged_share: float = 0.02
    flagged_segment_s: float = 10.0
    rendition_fps: float = 30.0
    # Trust policy the site's settings do not state (the settings' rules come from the running site,
    # ``bench.site_day.TrustRules``). Each knob is read in one place of ``bench.site_day``.
    # The shipped violence head (``manage.py build_models`` registers and activates it; ``make run`` calls it).
    # Defence 10's window guard then has the server compute the samples of a borderline window (below, only those
    # short of a quorum): docs/trust.md measured 100 % of honest windows borderline at the shipped weights
    # (``bench.violence_sweep``).
    violence_head_active: bool = True
    window_guard_share: float = 1.0
    # Share of peer-agreed samples whose nudity score lies within HYDRA_TRUST_BORDERLINE_MARGIN of the threshold
    # (defence 10, per-frame heads): the server computes them (below, only those short of a quorum). Not measured
    # on real content here: 0 is an assumption that flatters Hydra (moot while the rule charges no accepted sample).
    nudity_borderline_share: float = 0.0
    # The borderline rules of defence 10 (the window guard above, the nudity margin below) on samples an
    # independent quorum of replicas holds. False is the code as merged (branch ``windows``): heads score the most
    # severe of agreeing replicas, and both rules apply only to samples with fewer than two independent replicas.
    # Every sample peers accept in this model holds a quorum, so False charges neither rule. True prices the rule
    # before that merge (the server computed a borderline window's samples and a near-threshold nudity sample
    # whatever their replicas): ``bench.run.site_day_section`` keeps it as a variant for the before/after.
    borderline_rules_despite_quorum: bool = False
    # The uploader mix that sets each upload's coverage deadline (defence 7, ``moderation.services
    # .start_coverage_deadline``: the base plus a step per clean upload of the uploader's record, capped; the
    # settings come from the running site). Share of the day's uploads whose uploader has an established record:
    # 0.7, from the concentration of uploads on frequent uploaders [Pew19] (10 % of the channels made 70 % of the
    # videos of a week), taking those frequent uploaders as the ones with a clean history. A small site is not
    # YouTube's popular channels: this is an assumption that borrows the published shape. 0 is the site before
    # the policy (every upload at the base deadline, as for a new uploader).
    established_uploader_share: float = 0.7
    # Days of clean uploading behind an established uploader's record, at the rate it uploads today (its record is
    # days x min(today's uploads, HYDRA_TRUST_UPLOADER_RECORD_PER_DAY)). Assumption: a week.
    established_uploader_record_days: int = 7
    # Uploads an uploader makes in the day: 1 + Poisson(mean - 1). Assumption, in line with [Pew19]'s few prolific
    # uploaders; an earlier upload of the day adds to the record of a later one once its deadline has passed clean.
    uploads_per_uploader: float = 2.0
    # A returning device's record of server-verified results (what sets its spot-check rate and whether it
    # counts towards the small-audience rule): the bench's returning viewers (bench.hydra_path.RETURNING_RECORD),
    # far past the floor. Assumption: every returning device is established.
    returning_record: int = 1_000
    # Server CPU of one recomputed frame of a liar's disputed batch, in spot checks: the frame plus the
    # honest paintings (defence 3) it is compared with before a quarantine (3 more CNN runs, decode shared).
    # Assumption: priced as 1 + 3 spot checks, an upper bound.
    dispute_frame_spot_checks: float = 4.0
    # Scale of the projection [YT].
    upload_hours_per_minute: float = 500.0
    # Prices (see the module docstring).
    vcpu_hour_usd: float = 0.08925 / 2
    egress_gb_usd: float = 0.09


# The day the replay drives through the real stack (``bench.site_day_replay``): the same model and seed, scaled
# down to run in minutes on 2 cores. Fewer, shorter uploads with more views each, so that viewers reach them
# before the coverage deadline, and more liars, so that some arrive; time runs ``REPLAY_TIME_COMPRESSION`` times
# faster (every trust setting in seconds is divided by it), and only what happens before each upload's deadline
# is driven (later viewers are extra viewers of a covered video, priced with the component cost).
REPLAY_DAY = SiteDayParams(
    uploads=24,
    length_median_s=12.0,
    length_sigma=0.6,
    views_per_upload=80.0,
    # The day's 1 % of liars draws none among the 30 visits of this day; 10 % draws 3 (the harness's random liar).
    malicious_share=0.1,
    # Every upload from one uploader with no record, as the replay's videos are (one bench owner, all ready at once,
    # none covered yet): the real stack gives each the base deadline, and so does the model.
    established_uploader_share=0.0,
    uploads_per_uploader=1.0,
)
REPLAY_MAX_DURATION_S = 40.0
REPLAY_TIME_COMPRESSION = 15.0
