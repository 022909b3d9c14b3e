from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api import ObtainAuthTokenThrottled
from videos.api.views import VideoViewSet

router = SimpleRouter()
router.register("videos", VideoViewSet, basename="video")

urlpatterns = [
    path("auth/token/", ObtainAuthTokenThrottled.as_view(), name="api-token"),
    *router.urls,
]
