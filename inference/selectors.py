"""Queries about inference state. Read-only; state changes live in inference.services."""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from inference.ml.artefacts import ArtefactError, Artefacts, read_artefacts
from inference.models import ModelVersion

# --- Model registry (ml helper) -----------------------------------------------------------------


def active_model_version() -> ModelVersion | None:
    """The model version new sessions get."""
    return ModelVersion.objects.filter(is_active=True).first()


def model_artefact_dir(model_version: ModelVersion) -> Path:
    return Path(settings.HYDRA_MODEL_ROOT) / model_version.artefact_dir


def model_artefacts(model_version: ModelVersion) -> Artefacts:
    """The checked artefacts on disk of a registered version (raises ArtefactError if they are gone)."""
    return read_artefacts(model_artefact_dir(model_version))


def browser_artefact_path(content_hash: str, name: str) -> Path | None:
    """The file a browser may fetch as ``/models/<content_hash>/<name>``, or None.

    Only the files a version's manifest lists for the browser are ever served, so no other
    file under the model root can be reached, whatever the name contains.
    """
    model_version = ModelVersion.objects.filter(content_hash=content_hash).first()
    if model_version is None:
        return None
    directory = model_artefact_dir(model_version)
    try:
        browser_files = _browser_files(directory)
    except ArtefactError:
        return None
    return directory / name if name in browser_files else None


@functools.lru_cache(maxsize=16)
def _browser_files(directory: Path) -> tuple[str, ...]:
    """Artefact directories never change once written, so their checked file list is cached."""
    return read_artefacts(directory).browser_files
