from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("videos.api.urls")),
    path("accounts/", include("accounts.urls")),
    path("models/", include("inference.urls")),
    path("moderation/", include("moderation.urls")),
    path("", include("videos.urls")),
]
