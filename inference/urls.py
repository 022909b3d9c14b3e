from django.urls import re_path

from inference import views

app_name = "inference"

urlpatterns = [
    re_path(r"^(?P<content_hash>[0-9a-f]{64})/(?P<name>[A-Za-z0-9_.-]+)$", views.model_artefact, name="artefact"),
]
