from django.urls import path

from videos import views

app_name = "videos"
urlpatterns = [
    path("", views.home, name="home"),
    path("upload/", views.upload, name="upload"),
    path("my-videos/", views.my_videos, name="mine"),
    path("v/<slug:slug>/", views.player, name="player"),
    path("v/<slug:slug>/edit/", views.edit, name="edit"),
    path("v/<slug:slug>/delete/", views.delete, name="delete"),
    path("media/v/<slug:slug>/video.mp4", views.stream, name="stream"),
    path("media/v/<slug:slug>/poster.jpg", views.poster, name="poster"),
]
