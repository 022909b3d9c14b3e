"""``manage.py train_head <category> --from-folder PATH | --from-decisions``: train a temporal head version.

``--model pooled`` (the default, the head Hydra ships for violence) is a linear classifier over pooled windows,
reported with k-fold cross-validation; ``--model lstm`` is the Keras LSTM with one held-out split.
``--ship`` also copies the new version into the repository's shipped weights (``inference/ml/weights/``).
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference import selectors
from inference.ml.pooled_training import PhasedClip
from inference.ml.temporal import INPUT_MODES, TemporalConfig
from inference.ml.training import TrainingOptions
from inference.ml.violence import STATISTICS, PooledConfig
from inference.models import Head, HeadVersion
from inference.services import pooled_heads
from inference.services import training as training_services
from moderation.selectors import final_labels

MODELS = ("pooled", "lstm")


class Command(BaseCommand):
    help = (
        "Train a temporal head (e.g. violence) from a folder of labelled videos (one sub-folder per label, "
        "like RWF-2000's Fight/NonFight) or from moderators' final decisions, and register it as a new version."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("category", help="A registered temporal head, e.g. violence.")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--from-folder", type=Path, metavar="PATH", help="Folder with two label sub-folders.")
        source.add_argument("--from-decisions", action="store_true", help="Stored features + moderators' labels.")
        parser.add_argument("--positive-label", help="The label folder where the category applies (e.g. Fight).")
        parser.add_argument("--model", choices=MODELS, default="pooled", help="pooled (shipped) or lstm.")
        defaults = TemporalConfig()
        pooled = PooledConfig()
        parser.add_argument(
            "--window", type=int, help=f"Samples per window (pooled {pooled.window}, lstm {defaults.window})."
        )
        parser.add_argument("--stride", type=int, default=defaults.stride, help="Samples between window starts.")
        parser.add_argument("--inputs", choices=INPUT_MODES, default=defaults.inputs, help="What the LSTM sees.")
        parser.add_argument(
            "--statistics", nargs="+", choices=STATISTICS, default=list(pooled.statistics), help="Pooled: per window."
        )
        parser.add_argument("--regularisation", type=float, default=pooled.regularisation, help="Pooled: L2 C.")
        parser.add_argument("--folds", type=int, default=5, help="Pooled: cross-validation folds.")
        parser.add_argument("--phases", type=int, default=4, help="Pooled: sampling phases per clip (augmentation).")
        parser.add_argument("--ship", action="store_true", help="Pooled: copy the version into the shipped weights.")
        parser.add_argument("--lstm-units", type=int, default=defaults.lstm_units)
        parser.add_argument("--projection-units", type=int, default=defaults.projection_units)
        options = TrainingOptions()
        parser.add_argument("--epochs", type=int, default=options.max_epochs, help="Most epochs (early stopping).")
        parser.add_argument("--patience", type=int, default=options.patience, help="Early stopping patience.")
        parser.add_argument("--batch-size", type=int, default=options.batch_size)
        parser.add_argument("--test-fraction", type=float, default=options.test_fraction, help="Held out per label.")
        parser.add_argument("--seed", type=int, default=options.seed)
        parser.add_argument("--no-activate", action="store_true", help="Register the version without using it.")

    def handle(self, *args, category: str, **options) -> None:
        model_version = selectors.active_model_version()
        if model_version is None:
            raise CommandError("no active model version: run `manage.py build_models` first")
        head = Head.objects.filter(category=category).first()
        if head is None:
            known = ", ".join(Head.objects.values_list("category", flat=True)) or "none"
            raise CommandError(f"no head {category!r}; registered: {known}")
        if head.kind != Head.Kind.TEMPORAL:
            raise CommandError(f"{category} is a {head.kind} head; only temporal heads are trained here")
        if options["model"] == "pooled":
            self._train_pooled(category, model_version, options)
            return
        if options["ship"]:
            raise CommandError("--ship is for the pooled model only")
        try:
            config = TemporalConfig(
                window=options["window"] or TemporalConfig().window,
                stride=options["stride"],
                inputs=options["inputs"],
                lstm_units=options["lstm_units"],
                projection_units=options["projection_units"],
            )
            training = TrainingOptions(
                test_fraction=options["test_fraction"],
                max_epochs=options["epochs"],
                patience=options["patience"],
                batch_size=options["batch_size"],
                seed=options["seed"],
            )
            started = time.monotonic()
            if options["from_folder"]:
                source = f"folder {options['from_folder']}"
                sequences = training_services.sequences_from_folder(
                    options["from_folder"], model_version, options["positive_label"]
                )
            else:
                source = "moderators' final decisions"
                labels = [(video_id, label) for video_id, _category, label in final_labels(category)]
                sequences = training_services.sequences_from_labels(labels, model_version)
            features_seconds = time.monotonic() - started
            self.stdout.write(
                f"{len(sequences)} labelled clips from {source} ({features_seconds:.1f} s to get features)"
            )
            version = training_services.train_temporal_head_version(
                category, sequences, config, training, source=source, activate=not options["no_activate"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self._report(version, features_seconds)

    def _report(self, version, features_seconds: float) -> None:
        report = version.metrics
        clips, windows = report["test_clips"], report["test_windows"]
        auc = "n/a" if windows["roc_auc"] is None else f"{windows['roc_auc']:.3f}"
        self.stdout.write(
            f"held-out clips: accuracy {clips['accuracy']:.3f}, precision {clips['precision']:.3f}, "
            f"recall {clips['recall']:.3f}, confusion [[tn, fp], [fn, tp]] {clips['confusion_matrix']}\n"
            f"held-out windows: accuracy {windows['accuracy']:.3f}, ROC-AUC {auc}\n"
            f"epochs {report['epochs_run']} (best {report['best_epoch']}), training {report['train_seconds']:.1f} s"
        )
        state = "active" if version.is_active else "registered, not active"
        self.stdout.write(
            self.style.SUCCESS(
                f"{version} ({state}); report and ROC curve in {version.weights_path}/ under HYDRA_MODEL_ROOT"
            )
        )

    def _train_pooled(self, category: str, model_version, options: dict) -> None:
        try:
            config = PooledConfig(
                window=options["window"] or PooledConfig().window,
                stride=options["stride"],
                statistics=tuple(options["statistics"]),
                regularisation=options["regularisation"],
            )
            started = time.monotonic()
            if options["from_folder"]:
                source = f"folder {options['from_folder'].name}"
                clips = pooled_heads.phased_clips_from_folder(
                    options["from_folder"], model_version, options["positive_label"], phases=options["phases"]
                )
            else:
                source = "moderators' final decisions"
                labels = [(video_id, label) for video_id, _category, label in final_labels(category)]
                clips = [
                    PhasedClip(key=sequence.key, label=sequence.label, phases=(sequence.features,))
                    for sequence in training_services.sequences_from_labels(labels, model_version)
                ]
            features_seconds = time.monotonic() - started
            self.stdout.write(f"{len(clips)} labelled clips from {source} ({features_seconds:.1f} s to get features)")
            version = pooled_heads.train_pooled_head_version(
                category,
                clips,
                config,
                folds=options["folds"],
                seed=options["seed"],
                source=source,
                activate=not options["no_activate"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        report = version.metrics
        oof = report["out_of_fold"]
        self.stdout.write(
            f"{report['protocol']}\n"
            f"balanced accuracy {report['balanced_accuracy_mean']:.3f} +/- {report['balanced_accuracy_std']:.3f} "
            f"(folds {report['balanced_accuracy_range'][0]:.3f}-{report['balanced_accuracy_range'][1]:.3f}); "
            f"out of fold: accuracy {oof['accuracy']:.3f}, precision {oof['precision']:.3f}, "
            f"recall {oof['recall']:.3f}, ROC AUC {oof['roc_auc']:.3f}, "
            f"confusion [[tn, fp], [fn, tp]] {oof['confusion_matrix']}, Brier {report['calibration']['brier']:.3f}"
        )
        if options["ship"]:
            self._ship(version, model_version)
        state = "active" if version.is_active else "registered, not active"
        self.stdout.write(self.style.SUCCESS(f"{version} ({state}); report and ROC curve in {version.weights_path}/"))

    def _ship(self, version: HeadVersion, model_version) -> None:
        interval_ms = settings.HYDRA_SAMPLE_INTERVAL_MS
        target = pooled_heads.shipped_directory(version.head.category, interval_ms)
        target.mkdir(parents=True, exist_ok=True)
        source = Path(settings.HYDRA_MODEL_ROOT) / version.weights_path
        for name in pooled_heads.SHIPPED_FILES:
            if name != pooled_heads.MANIFEST_FILE:
                (target / name).write_bytes((source / name).read_bytes())
        pooled_heads.write_shipped_manifest(target, version.head.category, model_version, interval_ms)
        self.stdout.write(f"shipped weights written to {target}")
