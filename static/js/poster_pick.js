// The edit page (templates/videos/edit.html): "Use this frame" copies the paused video's time into the form.
(() => {
  const video = document.getElementById('poster-source');
  const button = document.querySelector('[data-use-frame]');
  const input = document.getElementById('id_poster_at');
  if (!video || !button || !input) return;
  button.addEventListener('click', () => {
    video.pause();
    input.value = video.currentTime.toFixed(2);
  });
})();
