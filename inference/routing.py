"""Websocket routes, mounted by hydra_site.asgi behind the allowed-hosts origin check and auth."""

from django.urls import path

from inference.consumers import AnalysisConsumer

websocket_urlpatterns: list = [
    path("ws/analysis/<str:slug>/", AnalysisConsumer.as_asgi(), name="analysis"),
]
