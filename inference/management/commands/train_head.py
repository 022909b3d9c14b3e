"""``manage.py train_head <category> --from-folder PATH | --from-decisions``: train a temporal head version."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inference import selectors
from inference.ml.temporal import INPUT_MODES, TemporalConfig
from inference.ml.training import TrainingOptions
from inference.models import Head
from inference.services import training as training_services
from moderation.selectors import final_labels


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
        defaults = TemporalConfig()
        parser.add_argument("--window", type=int, default=defaults.window, help="Samples per window.")
        parser.add_argument("--stride", type=int, default=defaults.stride, help="Samples between window starts.")
        parser.add_argument("--inputs", choices=INPUT_MODES, default=defaults.inputs, help="What the LSTM sees.")
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
        try:
            config = TemporalConfig(
                window=options["window"],
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
