"""The policy list and the moderator groups every Hydra database has.

Run by migration 0002 and again after every ``post_migrate`` (a flushed test database, a new
permission), so the groups always hold exactly these permissions. Works with historical models
(``apps`` from a migration) as well as the live registry.
"""

POLICY_REASONS = [
    # code, title, public explanation, category, is_violation
    ("no-violation", "No violation", "We reviewed this video and it does not break our rules.", "", False),
    ("sexual-content", "Sexual content", "Nudity and sexual activity are not allowed on Hydra.", "nudity", True),
    (
        "graphic-violence",
        "Graphic violence",
        "Gore and content that glorifies violence are not allowed.",
        "violence",
        True,
    ),
    ("hate", "Hateful content", "Content that attacks people for who they are is not allowed.", "hate", True),
    ("harassment", "Harassment", "Content that targets or bullies a person is not allowed.", "harassment", True),
    ("self-harm", "Self-harm", "Content that promotes suicide or self-harm is not allowed.", "self_harm", True),
    ("child-safety", "Child safety", "Content that endangers minors is never allowed.", "child_safety", True),
    ("spam", "Spam or misleading", "Spam, scams and deceptive content are not allowed.", "spam", True),
    ("copyright", "Copyright", "This video was reported as infringing someone's copyright.", "copyright", True),
    ("sensitive-age-gate", "Sensitive: adults only", "This video is only shown to signed-in adults.", "nudity", True),
]

MODERATOR_PERMISSIONS = [
    ("moderation", "case", "view_case"),
    ("moderation", "case", "decide_case"),
    ("moderation", "decision", "view_decision"),
    ("moderation", "report", "view_report"),
    ("moderation", "appeal", "view_appeal"),
    ("moderation", "auditevent", "view_auditevent"),
    ("moderation", "policyreason", "view_policyreason"),
    ("videos", "video", "view_hidden_video"),
]
SENIOR_EXTRA_PERMISSIONS = [
    ("moderation", "case", "decide_escalated"),
    ("moderation", "case", "reverse_decision"),
    ("moderation", "policyreason", "add_policyreason"),
    ("moderation", "policyreason", "change_policyreason"),
]
PERMISSION_NAMES = {
    "decide_case": "Can claim and decide moderation cases",
    "decide_escalated": "Can decide escalated cases (senior)",
    "reverse_decision": "Can reverse decisions (senior)",
    "view_hidden_video": "Can view held and removed videos",
}


def _permission(apps, app_label, model, codename):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    verb = codename.split("_", 1)[0]
    default_name = f"Can {verb} {model}"
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=codename, defaults={"name": PERMISSION_NAMES.get(codename, default_name)}
    )
    return permission


def ensure_moderation_defaults(apps) -> None:
    try:
        PolicyReason = apps.get_model("moderation", "PolicyReason")
    except LookupError:  # migrating backwards past 0001: nothing to seed
        return
    Group = apps.get_model("auth", "Group")
    for position, (code, title, explanation, category, is_violation) in enumerate(POLICY_REASONS):
        PolicyReason.objects.update_or_create(
            code=code,
            defaults={
                "title": title,
                "public_explanation": explanation,
                "category": category,
                "is_violation": is_violation,
                "position": position * 10,
            },
        )
    moderators, _ = Group.objects.get_or_create(name="Moderators")
    moderators.permissions.set([_permission(apps, *spec) for spec in MODERATOR_PERMISSIONS])
    seniors, _ = Group.objects.get_or_create(name="Senior moderators")
    seniors.permissions.set([_permission(apps, *spec) for spec in MODERATOR_PERMISSIONS + SENIOR_EXTRA_PERMISSIONS])
