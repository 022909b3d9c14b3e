from django.urls import path

from . import views

app_name = "moderation"
urlpatterns = [
    path("report/<slug:slug>/", views.report_video, name="report"),
    path("reports/", views.my_reports, name="my_reports"),
    path("appeal/<int:decision_id>/", views.appeal_decision, name="appeal"),
]
