from django.urls import path
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.routers import SimpleRouter

from videos.api.views import VideoViewSet

router = SimpleRouter()
router.register("videos", VideoViewSet, basename="video")

urlpatterns = [
    path("auth/token/", ObtainAuthToken.as_view(), name="api-token"),
    *router.urls,
]
