// Upload page: send the form with XMLHttpRequest so the bar can show real upload progress.
// Plain script, no bundle. Without JavaScript the form still posts normally.
(function () {
  "use strict";

  const form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;

  const fileInput = form.querySelector('input[type="file"]');
  const dropzone = form.querySelector(".dropzone");
  const fileName = form.querySelector("[data-file-name]");
  const fileError = document.getElementById("file-error");
  const submit = document.getElementById("upload-submit");
  const progress = document.getElementById("upload-progress");
  const track = progress.querySelector('[role="progressbar"]');
  const bar = document.getElementById("upload-progress-bar");
  const label = document.getElementById("upload-progress-label");
  const value = document.getElementById("upload-progress-value");
  const titleInput = form.querySelector('input[name="title"]');

  function formatBytes(bytes) {
    const units = ["bytes", "KB", "MB", "GB"];
    let size = bytes;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return (unit ? size.toFixed(1) : size) + " " + units[unit];
  }

  function showError(message) {
    fileError.textContent = message;
    fileError.hidden = false;
    dropzone.classList.add("has-error");
  }

  function clearError() {
    fileError.hidden = true;
    fileError.textContent = "";
    dropzone.classList.remove("has-error");
  }

  function setProgress(percent, text) {
    const rounded = Math.max(0, Math.min(100, Math.round(percent)));
    bar.style.width = rounded + "%";
    track.setAttribute("aria-valuenow", String(rounded));
    value.textContent = rounded + "%";
    if (text) label.textContent = text;
  }

  function showChosenFile() {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    clearError();
    dropzone.classList.add("has-file");
    fileName.textContent = file.name + " · " + formatBytes(file.size);
  }

  fileInput.addEventListener("change", showChosenFile);
  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function () { dropzone.classList.add("is-dragging"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function () { dropzone.classList.remove("is-dragging"); });
  });

  function finish(xhr) {
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (error) {
      body = null;
    }
    if (xhr.status === 201 && body && body.redirect) {
      setProgress(100, "Done. Opening My videos…");
      window.location.assign(body.redirect);
      return;
    }
    progress.hidden = true;
    progress.classList.remove("is-processing");
    submit.disabled = false;
    submit.textContent = "Upload";
    const message = body && body.error ? body.error.message : "The upload failed (HTTP " + xhr.status + "). Please try again.";
    showError(message);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearError();
    if (!fileInput.files || !fileInput.files.length) {
      showError("Choose a video file to upload.");
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", form.querySelector('input[name="csrfmiddlewaretoken"]').value);
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) setProgress((e.loaded / e.total) * 100, "Uploading " + formatBytes(e.loaded) + " of " + formatBytes(e.total));
    });
    xhr.upload.addEventListener("load", function () {
      setProgress(100, "Uploaded. Checking and converting the video…");
      progress.classList.add("is-processing");
    });
    xhr.addEventListener("load", function () { finish(xhr); });
    xhr.addEventListener("error", function () {
      progress.hidden = true;
      submit.disabled = false;
      submit.textContent = "Upload";
      showError("The connection was lost during the upload. Please try again.");
    });
    submit.disabled = true;
    submit.textContent = "Uploading…";
    progress.hidden = false;
    setProgress(0, "Starting upload…");
    if (titleInput && !titleInput.value.trim()) titleInput.placeholder = fileInput.files[0].name;
    xhr.send(new FormData(form));
  });
})();
