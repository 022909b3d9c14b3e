from tests.moderation.conftest import (  # noqa: F401  (the same people and videos as moderation's tests)
    make_ready_video,
    moderator,
    moderator2,
    reason,
    uploader,
    video,
    viewer,
)
