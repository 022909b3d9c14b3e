"""The REST API: one's own videos only, token auth, pagination, one error shape, a valid schema."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.validation import validate_schema
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.videos.conftest import files_under
from videos.models import Video


@pytest.fixture
def api(owner) -> APIClient:
    client = APIClient()
    client.force_authenticate(owner)
    return client


def test_anonymous_requests_get_401_in_the_error_shape(db):
    response = APIClient().get("/api/videos/")
    assert response.status_code in (401, 403)
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_token_is_obtained_with_a_password_and_authenticates(owner, ready_video):
    video = ready_video(owner)
    client = APIClient()
    denied = client.post("/api/auth/token/", {"username": "uploader", "password": "wrong"})
    assert denied.status_code == 400 and denied.json()["error"]["message"]
    token = client.post("/api/auth/token/", {"username": "uploader", "password": "pw-uploader-1"}).json()["token"]
    assert token == Token.objects.get(user=owner).key
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert [item["slug"] for item in client.get("/api/videos/").json()["results"]] == [video.slug]


def test_list_shows_only_ones_own_videos_paginated(api, owner, stranger):
    mine = [Video.objects.create(owner=owner, title=f"mine {i}", status=Video.Status.PROCESSING) for i in range(3)]
    Video.objects.create(owner=stranger, title="not mine")
    first = api.get("/api/videos/?page_size=2").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["next"]
    second = api.get(first["next"]).json()
    slugs = {item["slug"] for item in first["results"] + second["results"]}
    assert slugs == {video.slug for video in mine}


def test_retrieve_a_ready_video_with_its_urls(api, owner, ready_video):
    video = ready_video(owner)
    body = api.get(f"/api/videos/{video.slug}/").json()
    assert body["status"] == "ready" and body["status_label"] == "Published"
    assert body["stream_url"].startswith(f"http://testserver/media/renditions/{video.media_key}.mp4?token=")
    assert body["poster_url"].startswith(f"http://testserver/media/posters/{video.media_key}.jpg?token=")
    assert api.get(body["stream_url"], headers={"range": "bytes=0-9"}).status_code == 206
    assert (body["rendition_width"], body["rendition_height"], body["rendition_fps"]) == (160, 120, 12.0)


def test_other_peoples_videos_are_404_and_cannot_be_deleted(api, stranger, ready_video):
    theirs = ready_video(stranger)
    assert api.get(f"/api/videos/{theirs.slug}/").status_code == 404
    response = api.delete(f"/api/videos/{theirs.slug}/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert Video.objects.filter(pk=theirs.pk).exists()


def test_delete_removes_the_row_and_every_file(api, owner, ready_video, media_root, django_capture_on_commit_callbacks):
    video = ready_video(owner)
    assert len(files_under(media_root)) == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/videos/{video.slug}/").status_code == 204
    assert not Video.objects.exists()
    assert files_under(media_root) == []


def test_schema_is_valid_and_documents_the_multipart_upload(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    create = schema["paths"]["/api/videos/"]["post"]
    content = create["requestBody"]["content"]
    assert list(content) == ["multipart/form-data"]
    upload_schema = schema["components"]["schemas"][content["multipart/form-data"]["schema"]["$ref"].split("/")[-1]]
    assert upload_schema["properties"]["file"]["format"] == "binary"
    assert upload_schema["required"] == ["file"]
    assert {"201", "400", "413"} <= set(create["responses"])
    assert "/api/auth/token/" in schema["paths"]
    assert {"get", "delete"} <= set(schema["paths"]["/api/videos/{slug}/"])


def test_api_docs_page_loads(client, db):
    assert client.get("/api/docs/").status_code == 200


def test_schema_generation_has_no_warnings(db, tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "/api/videos/{slug}/" in (tmp_path / "schema.yml").read_text()
