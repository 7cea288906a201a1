// vidsr compare: a split view over one moment, two sides drawn at one zoom and one pan, so every
// pixel on the left sits exactly where its counterpart sits on the right. No library, no network.
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("data").textContent);
  const $ = (id) => document.getElementById(id);
  const ZOOMS = [0, 1, 2, 4]; // 0: the whole picture in view (not pixel-exact); n: n device pixels per output pixel
  // The whole picture first (zoom 0: fit); 1:1, 2:1 and 4:1 are a key or a click away.
  const state = { moment: 0, model: 0, left: "nearest", zoom: 0, split: 50, flipped: false, panX: 0, panY: 0 };
  const shownWidth = data.output_width;
  const shownHeight = data.output_height;
  const viewer = $("viewer");
  const videos = [$("video-left"), $("video-right")];

  const fileUrl = (name) => encodeURIComponent(data.folder) + "/" + encodeURIComponent(name);
  const modelKey = (k) => "model:" + k;

  // ---- what each side shows -------------------------------------------------------------------

  function leftChoices() {
    const choices = [
      { key: "nearest", label: "source, enlarged nearest" },
      { key: "bicubic", label: "source, enlarged bicubic" },
    ];
    data.models.forEach((model, k) => choices.push({ key: modelKey(k), label: model.label }));
    return choices;
  }

  function still(key) {
    const moment = data.moments[state.moment];
    if (key === "nearest") return { src: moment.source, label: "source (nearest)", smooth: false };
    if (key === "bicubic") return { src: moment.bicubic, label: "source (bicubic)", smooth: false };
    const k = Number(key.slice(6));
    return { src: moment.outputs[k], label: data.models[k].label, smooth: false };
  }

  function clip(key) {
    const clips = data.moments[state.moment].clips;
    if (!clips) return null;
    if (key === "nearest") return { src: clips.source, label: "source (nearest)", smooth: false };
    if (key === "bicubic") return { src: clips.source, label: "source (browser's smoothing)", smooth: true };
    const k = Number(key.slice(6));
    return { src: clips.outputs[k], label: data.models[k].label, smooth: false };
  }

  function sides() {
    const pair = [state.left, modelKey(state.model)];
    return state.flipped ? pair.reverse() : pair;
  }

  // ---- geometry: one scale and one pan for everything -------------------------------------------

  function scale() {
    if (state.zoom === 0) {
      const box = viewer.getBoundingClientRect();
      return Math.min(box.width / shownWidth, box.height / shownHeight);
    }
    return state.zoom / (window.devicePixelRatio || 1); // 1:1 is one output pixel per device pixel
  }

  const zoomText = () => (state.zoom === 0 ? "fit (" + Math.round(scale() * 100) + " %)" : state.zoom + ":1");

  function clampPan() {
    const width = shownWidth * scale();
    const height = shownHeight * scale();
    const box = viewer.getBoundingClientRect();
    state.panX = width <= box.width ? (box.width - width) / 2 : Math.min(0, Math.max(box.width - width, state.panX));
    state.panY = height <= box.height ? (box.height - height) / 2 : Math.min(0, Math.max(box.height - height, state.panY));
  }

  function centre() {
    const box = viewer.getBoundingClientRect();
    return { x: (box.width / 2 - state.panX) / scale(), y: (box.height / 2 - state.panY) / scale() };
  }

  function place(element, boxWidth, boxHeight, point) {
    element.style.width = shownWidth * scale() + "px";
    element.style.height = shownHeight * scale() + "px";
    const x = boxWidth / 2 - point.x * scale();
    const y = boxHeight / 2 - point.y * scale();
    element.style.transform = "translate(" + x + "px, " + y + "px)";
  }

  function layout() {
    clampPan();
    const box = viewer.getBoundingClientRect();
    const point = centre();
    for (const img of [$("img-left"), $("img-right")]) place(img, box.width, box.height, point);
    for (const video of videos) {
      const frame = video.parentElement.getBoundingClientRect();
      place(video, frame.width, frame.height, point);
    }
    $("pane-left").style.clipPath = "inset(0 " + (100 - state.split) + "% 0 0)";
    $("divider").style.left = state.split + "%";
    $("split").value = String(state.split);
  }

  function setZoom(zoom) {
    const point = centre();
    state.zoom = zoom;
    const box = viewer.getBoundingClientRect();
    state.panX = box.width / 2 - point.x * scale();
    state.panY = box.height / 2 - point.y * scale();
    show();
  }

  function pan(dx, dy) {
    state.panX += dx;
    state.panY += dy;
    layout();
  }

  // ---- drawing the state --------------------------------------------------------------------------

  function setImage(img, picture) {
    const src = fileUrl(picture.src);
    if (img.getAttribute("src") !== src) img.setAttribute("src", src);
    img.className = picture.smooth || state.zoom === 0 ? "smooth" : "pixelated"; // fit shrinks: smooth it
    img.alt = picture.label;
  }

  function show() {
    const [leftKey, rightKey] = sides();
    const left = still(leftKey);
    const right = still(rightKey);
    setImage($("img-left"), left);
    setImage($("img-right"), right);
    $("tag-left").textContent = "\u25c0 " + left.label;
    $("tag-right").textContent = right.label + " \u25b6";
    const moment = data.moments[state.moment];
    $("where").textContent =
      "moment " + (state.moment + 1) + " of " + data.moments.length + " \u00b7 frame " + moment.index +
      " \u00b7 " + moment.time + " \u00b7 zoom " + zoomText() + (state.flipped ? " \u00b7 flipped" : "");
    document.querySelectorAll("#moments button").forEach((b, k) => b.setAttribute("aria-pressed", String(k === state.moment)));
    document.querySelectorAll("#models button").forEach((b, k) => b.setAttribute("aria-pressed", String(k === state.model)));
    document.querySelectorAll("#zooms button").forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.zoom) === state.zoom)));
    document.querySelectorAll("#table tbody tr").forEach((row, k) => row.classList.toggle("current", k === state.model));
    $("left").value = state.left;
    $("flip").setAttribute("aria-pressed", String(state.flipped));
    showClips(leftKey, rightKey);
    layout();
  }

  function showClips(leftKey, rightKey) {
    const pair = [clip(leftKey), clip(rightKey)];
    $("clips").hidden = pair[0] === null;
    if (pair[0] === null) return;
    const moment = data.moments[state.moment];
    $("clip-where").textContent = data.clip_seconds + " s from " + moment.clips.start + ", played in step";
    pair.forEach((item, k) => {
      const video = videos[k];
      const src = fileUrl(item.src);
      if (video.getAttribute("src") !== src) {
        // Paused, a clip shows the moment's own frame (half a frame in, clear of rounding); playing, the other's time.
        const time = playing ? videos[1 - k].currentTime : moment.clips.offset + frameSeconds / 2;
        video.setAttribute("src", src);
        video.currentTime = time;
        if (playing) video.play().catch(() => {});
      }
      video.className = item.smooth || state.zoom === 0 ? "smooth" : "pixelated";
    });
    $("clip-tag-left").textContent = "\u25c0 " + pair[0].label;
    $("clip-tag-right").textContent = pair[1].label + " \u25b6";
  }

  // ---- clips in step ------------------------------------------------------------------------------

  let playing = false;
  const frameSeconds = 1 / (data.source.frame_rate || 25);

  function togglePlay() {
    playing = !playing;
    $("play").textContent = playing ? "pause" : "play";
    $("play").setAttribute("aria-pressed", String(playing));
    if (playing) {
      videos[0].currentTime = videos[1].currentTime;
      for (const video of videos) video.play().catch(() => {});
      requestAnimationFrame(keepInStep);
    } else {
      for (const video of videos) video.pause();
      videos[0].currentTime = videos[1].currentTime;
    }
  }

  function keepInStep() {
    if (!playing) return;
    // The right side leads; the left is pulled back only when it drifts by more than two frames
    // (seeking every frame would stutter).
    if (Math.abs(videos[0].currentTime - videos[1].currentTime) > 2 * frameSeconds) {
      videos[0].currentTime = videos[1].currentTime;
    }
    requestAnimationFrame(keepInStep);
  }

  // ---- controls -----------------------------------------------------------------------------------

  function button(text, title, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.title = title;
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", onClick);
    return b;
  }

  function moveMoment(step) {
    state.moment = (state.moment + step + data.moments.length) % data.moments.length;
    show();
  }

  function chooseModel(k) {
    if (k < data.models.length) {
      state.model = k;
      show();
    }
  }

  function cycleLeft() {
    const keys = leftChoices().map((c) => c.key);
    state.left = keys[(keys.indexOf(state.left) + 1) % keys.length];
    show();
  }

  function setSplit(percent) {
    state.split = Math.min(100, Math.max(0, percent));
    layout();
  }

  function build() {
    $("title").textContent = data.title;
    const source = data.source;
    const rate = source.frame_rate ? source.frame_rate.toFixed(3).replace(/\.?0+$/, "") + " fps, " : "";
    $("facts").textContent =
      source.width + "x" + source.height + ", " + rate + source.frames + " frames, " + source.duration +
      " \u2192 " + shownWidth + "x" + shownHeight;
    data.moments.forEach((moment, k) => {
      $("moments").append(button(moment.time + " \u00b7 frame " + moment.index, "moment " + (k + 1) + " (\u2190 \u2192)", () => {
        state.moment = k;
        show();
      }));
    });
    data.models.forEach((model, k) => {
      const key = k < 9 ? k + 1 + " " : "";
      $("models").append(button(key + model.label, model.name + (k < 9 ? " (key " + (k + 1) + ")" : ""), () => chooseModel(k)));
    });
    for (const choice of leftChoices()) {
      const option = document.createElement("option");
      option.value = choice.key;
      option.textContent = choice.label;
      $("left").append(option);
    }
    $("left").addEventListener("change", () => {
      state.left = $("left").value;
      show();
    });
    for (const zoom of ZOOMS) {
      const text = zoom === 0 ? "fit" : zoom + ":1";
      const b = button(text, "zoom " + text + " (Z)", () => setZoom(zoom));
      b.dataset.zoom = String(zoom);
      $("zooms").append(b);
    }
    $("flip").addEventListener("click", () => {
      state.flipped = !state.flipped;
      show();
    });
    $("split").addEventListener("input", () => setSplit(Number($("split").value)));
    $("play").addEventListener("click", togglePlay);
    buildTable();
  }

  function duration(seconds) {
    const whole = Math.round(seconds);
    const h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    const s = whole % 60;
    return h ? h + " h " + String(m).padStart(2, "0") + " min" : m ? m + " min " + String(s).padStart(2, "0") + " s" : s + " s";
  }

  function speed(model) {
    const fps = 1 / model.seconds_per_frame;
    if (fps >= 1) return (fps >= 10 ? fps.toFixed(0) : fps.toPrecision(2)) + " fps";
    return model.seconds_per_frame.toPrecision(2) + " s a frame";
  }

  function buildTable() {
    const body = document.querySelector("#table tbody");
    data.models.forEach((model, k) => {
      const row = document.createElement("tr");
      const cells = [
        k < 9 ? String(k + 1) : "",
        model.name,
        speed(model) + " (" + model.device + ", " + model.precision + ")",
        "about " + duration(model.whole_video_seconds) + " for " + model.frames + " frames",
        model.output_width + "x" + model.output_height,
      ];
      for (const text of cells) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      const command = document.createElement("td");
      command.className = "command";
      const code = document.createElement("code");
      code.textContent = model.command_line;
      const copy = button("copy", "copy the command", () => copyText(code, copy));
      command.append(code, copy);
      row.append(command);
      body.append(row);
    });
  }

  function copyText(code, copy) {
    const selectIt = () => {
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      copy.textContent = "selected: ctrl+C";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(code.textContent).then(() => { copy.textContent = "copied"; }, selectIt);
    } else {
      selectIt();
    }
  }

  // ---- pointer: drag the line to split, drag elsewhere to pan --------------------------------------

  let drag = null;
  viewer.addEventListener("pointerdown", (event) => {
    const splitting = event.target === $("divider") || $("divider").contains(event.target);
    drag = { splitting, x: event.clientX, y: event.clientY };
    viewer.setPointerCapture(event.pointerId);
    viewer.classList.toggle("panning", !splitting);
    viewer.focus({ preventScroll: true });
  });
  viewer.addEventListener("pointermove", (event) => {
    if (!drag) return;
    if (drag.splitting) {
      const box = viewer.getBoundingClientRect();
      setSplit(((event.clientX - box.left) / box.width) * 100);
    } else {
      pan(event.clientX - drag.x, event.clientY - drag.y);
      drag.x = event.clientX;
      drag.y = event.clientY;
    }
  });
  const endDrag = () => {
    drag = null;
    viewer.classList.remove("panning");
  };
  viewer.addEventListener("pointerup", endDrag);
  viewer.addEventListener("pointercancel", endDrag);

  // ---- keyboard -----------------------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    const field = event.target.tagName === "INPUT" || event.target.tagName === "SELECT";
    if (field && event.key !== " " && !/^[1-9]$/.test(event.key)) return; // the field's own keys
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const box = viewer.getBoundingClientRect();
    const step = event.shiftKey ? 0.1 : 0;
    const actions = {
      ArrowLeft: () => (step ? pan(box.width * step, 0) : moveMoment(-1)),
      ArrowRight: () => (step ? pan(-box.width * step, 0) : moveMoment(1)),
      ArrowUp: () => (step ? pan(0, box.height * step) : null),
      ArrowDown: () => (step ? pan(0, -box.height * step) : null),
      " ": () => {
        state.flipped = !state.flipped;
        show();
      },
      z: () => setZoom(ZOOMS[(ZOOMS.indexOf(state.zoom) + 1) % ZOOMS.length]),
      l: cycleLeft,
      p: () => (data.moments[state.moment].clips ? togglePlay() : null),
      "[": () => setSplit(state.split - 5),
      "]": () => setSplit(state.split + 5),
    };
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (/^[1-9]$/.test(key)) {
      chooseModel(Number(key) - 1);
    } else if (actions[key]) {
      const result = actions[key]();
      if (result === null) return;
    } else {
      return;
    }
    event.preventDefault();
  });
  document.addEventListener("keyup", (event) => {
    if (event.key === " ") event.preventDefault(); // space flips; it must not also press a focused button
  });

  window.addEventListener("resize", layout);
  build();
  show();
})();
