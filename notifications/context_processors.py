from notifications import selectors


def unread_notifications(request) -> dict:
    """The count next to "Notifications" in the top bar (one indexed query, only for signed-in people)."""
    return {"unread_notifications": selectors.unread_count(request.user) if hasattr(request, "user") else 0}
