from __future__ import annotations

from django import forms

from .models import ReportReason
from .services import APPEAL_TEXT_MAX, REPORT_TEXT_MAX


class ReportForm(forms.Form):
    reason = forms.ChoiceField(choices=ReportReason.choices, widget=forms.RadioSelect)
    text = forms.CharField(
        required=False,
        max_length=REPORT_TEXT_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "What is wrong, and when in the video? (optional)"}),
    )


class AppealForm(forms.Form):
    text = forms.CharField(
        max_length=APPEAL_TEXT_MAX,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "Why is the decision wrong?"}),
    )
