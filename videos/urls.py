from django.urls import path

from videos import views
from videos.media_urls import MediaFile

app_name = "videos"
urlpatterns = [
    path("", views.home, name="home"),
    path("upload/", views.upload, name="upload"),
    path("my-videos/", views.my_videos, name="mine"),
    path("v/<slug:slug>/", views.player, name="player"),
    path("v/<slug:slug>/edit/", views.edit, name="edit"),
    path("v/<slug:slug>/delete/", views.delete, name="delete"),
    # Signed URLs (videos.media_urls) whose paths are the files' names under MEDIA_ROOT, as nginx serves them.
    path("media/renditions/<uuid:key>.mp4", views.media_file, {"media": MediaFile.RENDITION}, name="rendition"),
    path("media/posters/<uuid:key>.jpg", views.media_file, {"media": MediaFile.POSTER}, name="poster"),
]
