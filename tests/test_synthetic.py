import av

from videos.synthetic import write_audio_only


def test_make_video_writes_a_decodable_clip_of_the_requested_shape(make_video):
    path = make_video(seconds=2, fps=10, width=160, height=120, pattern="erratic", audio=True)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (160, 120)
        assert len(container.streams.audio) == 1
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 20


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = write_audio_only(tmp_path / "tone.m4a", seconds=1)
    with av.open(str(path)) as container:
        assert not container.streams.video
        assert container.streams.audio
