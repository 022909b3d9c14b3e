// Case page: jump the player to flagged segments and frames, seek from the timeline, show the playhead.
(() => {
  const player = document.getElementById("mq-player");
  if (!player) return;
  const root = document.querySelector(".mq-case");
  const durationMs = Number(root.dataset.durationMs) || 0;
  const clock = document.getElementById("mq-time");

  const format = (s) => {
    const t = Math.max(0, Math.floor(s));
    return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`;
  };
  const seek = (seconds) => {
    player.pause();
    player.currentTime = seconds;
  };

  document.querySelectorAll("[data-seek]").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll(".mq-seg.is-current").forEach((b) => b.classList.remove("is-current"));
      if (button.classList.contains("mq-seg")) button.classList.add("is-current");
      seek(Number(button.dataset.seek));
      player.scrollIntoView({ block: "nearest", behavior: "smooth" });
    });
  });

  document.querySelectorAll(".mq-tl__chart").forEach((chart) => {
    chart.addEventListener("click", (event) => {
      const box = chart.getBoundingClientRect();
      const duration = player.duration || durationMs / 1000;
      if (duration) seek(((event.clientX - box.left) / box.width) * duration);
    });
  });

  // j / k: next / previous flagged segment (not while typing a note).
  const segments = [...document.querySelectorAll(".mq-seg")];
  document.addEventListener("keydown", (event) => {
    if (!segments.length || event.target.closest("input, textarea, select") || event.metaKey || event.ctrlKey) return;
    if (event.key !== "j" && event.key !== "k") return;
    const current = segments.findIndex((b) => b.classList.contains("is-current"));
    const step = event.key === "j" ? 1 : -1;
    segments[(current + step + segments.length) % segments.length].click();
  });

  const heads = document.querySelectorAll(".mq-tl__head");
  player.addEventListener("timeupdate", () => {
    const duration = player.duration || durationMs / 1000;
    const x = duration ? (player.currentTime / duration) * 1000 : 0;
    heads.forEach((line) => { line.setAttribute("x1", x); line.setAttribute("x2", x); });
    if (clock) clock.textContent = `${format(player.currentTime)} / ${format(duration)}`;
  });
})();
