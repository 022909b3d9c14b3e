"""Model registry: building, finding and registering artefacts, and serving the browser files."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from inference import selectors
from inference.ml import artefacts as artefacts_module
from inference.ml import export
from inference.ml.artefacts import ArtefactError, build_artefacts, find_artefacts, read_artefacts
from inference.ml.quantise import quantise
from inference.models import ModelVersion
from inference.services.registry import ensure_model_version
from inference.services.server_features import compute_server_features

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_root(tmp_path, settings, model_artefacts) -> Path:
    """A model root holding a copy of the built artefacts (tests may damage it)."""
    root = tmp_path / "models"
    shutil.copytree(model_artefacts.directory, root / model_artefacts.directory.name)
    settings.HYDRA_MODEL_ROOT = root
    return root


@pytest.fixture
def no_build(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("artefacts were rebuilt")

    monkeypatch.setattr(artefacts_module, "build_artefacts", refuse)


@pytest.mark.slow
def test_build_is_reproducible_and_complete(tmp_path, settings, model_artefacts, feature_extractor):
    # feature_extractor: a Keras model already exists in this process, so auto-numbered names would show.
    built = build_artefacts(tmp_path / "models", settings.HYDRA_NSFWJS_DIR)
    assert built.content_hash == model_artefacts.content_hash == built.directory.name
    manifest = built.manifest
    assert manifest["feature_size"] == 1280
    assert manifest["preprocessing"] == {
        "input_size": 224,
        "scale": "divide_255",
        "resize": "bilinear_align_corners",
        "colour": "browser_rgb",
    }
    assert manifest["quantisation"] == {"dtype": "uint8", "min": 0.0, "max": 6.0}
    assert manifest["source"] == "nsfwjs@4.4.0 mobilenet_v2 (MIT)"
    assert manifest["browser_files"] == ["model.json", "group1-shard1of1.bin"]
    assert sorted(p.name for p in built.directory.iterdir()) == sorted(
        ["model.json", "group1-shard1of1.bin", "cnn.weights.h5", "cnn.tflite", "nsfw_head.npz", "manifest.json"]
    )
    tflite = (built.directory / "cnn.tflite").read_bytes()
    assert manifest["server_hashes"] == {"cnn_tflite": hashlib.sha256(tflite).hexdigest()}
    assert tflite == (model_artefacts.directory / "cnn.tflite").read_bytes()  # the export is reproducible too
    assert [p.name for p in (tmp_path / "models").iterdir()] == [built.content_hash]  # no staging left


@pytest.mark.slow
def test_a_directory_from_the_previous_builder_gains_the_tflite(model_root, settings, model_artefacts):
    """Same browser files, so the same directory: the rebuild adds the server's .tflite instead of giving up."""
    directory = model_root / model_artefacts.content_hash
    (directory / "cnn.tflite").unlink()
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["server_files"]["cnn_tflite"], manifest["server_hashes"]
    manifest["builder_version"], manifest["build_key"] = 1, "built by builder 1"
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert find_artefacts(model_root, settings.HYDRA_NSFWJS_DIR) is None

    upgraded = artefacts_module.ensure_artefacts(model_root, settings.HYDRA_NSFWJS_DIR)
    assert upgraded.directory == directory
    assert upgraded.manifest == model_artefacts.manifest
    assert (directory / "cnn.tflite").read_bytes() == (model_artefacts.directory / "cnn.tflite").read_bytes()
    assert find_artefacts(model_root, settings.HYDRA_NSFWJS_DIR) == upgraded
    assert [p.name for p in model_root.iterdir()] == [directory.name]


def test_existing_artefacts_are_found_not_rebuilt(model_root, settings, no_build, model_artefacts):
    found = artefacts_module.ensure_artefacts(model_root, settings.HYDRA_NSFWJS_DIR)
    assert found.directory == model_root / model_artefacts.content_hash


def test_damaged_artefacts_are_not_used(model_root, settings, model_artefacts):
    directory = model_root / model_artefacts.content_hash
    shard = directory / "group1-shard1of1.bin"
    shard.write_bytes(b"\x00" + shard.read_bytes()[1:])
    with pytest.raises(ArtefactError, match="hash"):
        read_artefacts(directory)
    assert find_artefacts(model_root, settings.HYDRA_NSFWJS_DIR) is None
    (directory / "cnn.weights.h5").unlink()
    with pytest.raises(ArtefactError, match=r"missing cnn\.weights\.h5"):
        read_artefacts(directory)


@pytest.mark.django_db
def test_ensure_model_version_registers_and_activates_once(model_root, no_build, model_artefacts):
    old = ModelVersion.objects.create(
        name="old",
        content_hash="0" * 64,
        feature_size=1280,
        preprocessing={},
        quantisation={},
        artefact_dir="x",
        is_active=True,
    )
    version = ensure_model_version()
    again = ensure_model_version()
    assert version.pk == again.pk and version.is_active
    assert version.content_hash == model_artefacts.content_hash
    assert version.artefact_dir == model_artefacts.content_hash
    assert version.feature_size == 1280
    assert version.quantisation == {"dtype": "uint8", "min": 0.0, "max": 6.0}
    assert selectors.active_model_version() == version
    old.refresh_from_db()
    assert not old.is_active
    assert ModelVersion.objects.count() == 2


@pytest.mark.django_db
def test_build_models_command(model_root, no_build, model_artefacts):
    out = StringIO()
    call_command("build_models", stdout=out)
    call_command("build_models", stdout=out)
    assert out.getvalue().count(model_artefacts.content_hash) == 2
    assert ModelVersion.objects.get().is_active


# --- serving the browser files ---------------------------------------------------------------


def artefact_url(content_hash: str, name: str) -> str:
    return reverse("inference:artefact", args=[content_hash, name])


@pytest.mark.django_db
def test_browser_files_are_served_immutable(client, model_root, model_version):
    url = artefact_url(model_version.content_hash, "model.json")
    assert url == f"/models/{model_version.content_hash}/model.json"
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["ETag"] == f'"{model_version.content_hash}"'
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    body = b"".join(response.streaming_content)
    assert body == (model_root / model_version.artefact_dir / "model.json").read_bytes()

    shard = client.get(artefact_url(model_version.content_hash, "group1-shard1of1.bin"))
    assert shard.status_code == 200 and shard["Content-Type"] == "application/octet-stream"
    assert int(shard["Content-Length"]) == 2_257_984

    assert client.head(url).status_code == 200
    not_modified = client.get(url, HTTP_IF_NONE_MATCH=f'"other", "{model_version.content_hash}"')
    assert not_modified.status_code == 304 and not_modified["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    assert client.post(url).status_code == 405


@pytest.mark.django_db
def test_a_changed_model_gets_a_new_url(model_root, model_version):
    """A browser's cached copy can never be stale: the URL names the bytes, and one changed byte changes it."""
    directory = model_root / model_version.artefact_dir
    files = read_artefacts(directory).browser_files
    changed = model_root / "changed"
    shutil.copytree(directory, changed)
    shard = bytearray((changed / files[-1]).read_bytes())
    shard[1000] ^= 1
    (changed / files[-1]).write_bytes(bytes(shard))
    changed_hash = export.content_hash(changed, files)
    assert changed_hash != model_version.content_hash

    old_url = selectors.browser_model_spec(model_version)["url"]
    new_url = selectors.browser_model_spec(ModelVersion(content_hash=changed_hash))["url"]
    assert old_url == f"/models/{model_version.content_hash}/model.json" == selectors.page_model_spec()["url"]
    assert new_url == f"/models/{changed_hash}/model.json"


@pytest.mark.django_db
def test_old_versions_stay_served(client, model_root, model_version):
    ModelVersion.objects.filter(pk=model_version.pk).update(is_active=False)
    assert client.get(artefact_url(model_version.content_hash, "model.json")).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["manifest.json", "cnn.weights.h5", "nsfw_head.npz", "..%2Fmanifest.json", "model.json%00", "nope.bin"]
)
def test_only_browser_files_are_served(client, model_root, model_version, name):
    response = client.get(f"/models/{model_version.content_hash}/{name}")
    assert response.status_code == 404


@pytest.mark.django_db
def test_unknown_or_malformed_hash_is_404(client, model_root, model_version):
    assert client.get(artefact_url("f" * 64, "model.json")).status_code == 404
    assert client.get("/models/../model.json").status_code == 404
    assert client.get(f"/models/{model_version.content_hash[:-1]}/model.json").status_code == 404


def test_web_modules_do_not_import_tensorflow():
    code = (
        "import django, sys; django.setup();"
        "import inference.services.registry, inference.services.streaming, inference.services.settlement;"
        "import inference.services.training, inference.selectors, inference.views, inference.urls, inference.admin;"
        "import inference.management.commands.build_models;"
        "sys.exit(1 if {'tensorflow', 'keras'} & set(sys.modules) else 0)"
    )
    env = {"DJANGO_SETTINGS_MODULE": "hydra_site.settings", "PATH": "/usr/bin:/bin"}
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env).returncode == 0


# --- the server's own features -----------------------------------------------------------------


@pytest.mark.django_db
def test_compute_server_features_decodes_and_runs_the_cnn(
    make_video, media_root, model_version, feature_extractor, django_user_model
):
    from inference.ml import cnn, frames
    from videos.models import Video

    clip = make_video("rendition.mp4", seconds=3, fps=24, width=160, height=120, pattern="erratic")
    owner = django_user_model.objects.create_user("uploader")
    video = Video.objects.create(owner=owner, title="clip", fps=24, duration_ms=3000)
    rendition = media_root / "renditions" / f"{video.media_key}.mp4"
    rendition.parent.mkdir(parents=True)
    shutil.copy(clip, rendition)
    video.rendition.name = f"renditions/{video.media_key}.mp4"
    video.save()

    samples = [0, 1000, 2000, 2958]
    features = compute_server_features(video, samples)
    assert features.shape == (4, 1280) and features.dtype == np.float32
    # The server's runtime (TFLite) computes the Keras function: tests/inference/test_server_cnn.py has the parity.
    expected = cnn.compute_features(feature_extractor, frames.decode_frames_at(rendition, samples))
    np.testing.assert_allclose(features, expected, atol=1e-3)
    assert (quantise(features) == quantise(expected)).mean() >= 0.999
    assert not np.allclose(features[0], features[1])
    assert compute_server_features(video, []).shape == (0, 1280)

    video.rendition = ""
    with pytest.raises(ValueError, match="no rendition"):
        compute_server_features(video, samples)
    ModelVersion.objects.update(is_active=False)
    with pytest.raises(ValueError, match="build_models"):
        compute_server_features(video, samples)


@pytest.mark.django_db
def test_admin_shows_versions_read_only(admin_client, model_root, model_version):
    changelist = admin_client.get("/admin/inference/modelversion/")
    assert changelist.status_code == 200
    assert model_version.content_hash in changelist.content.decode()
    change = admin_client.get(f"/admin/inference/modelversion/{model_version.pk}/change/")
    assert change.status_code == 200
    assert 'name="content_hash"' not in change.content.decode()  # shown, not editable
    assert admin_client.get("/admin/inference/modelversion/add/").status_code == 403
