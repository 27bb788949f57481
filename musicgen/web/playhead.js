() => {
  // musicgen's playhead. While an <audio> inside a .player plays, a cursor moves over that
  // player's piano roll and the notes struck at that moment light up in its score, which scrolls
  // along. A score opens at its continuation. The data come with the sheet music:
  // .sheet[data-playhead] = {tempo: [[seconds, quarter notes, qpm], ...], roll: [left, right,
  // quarter notes]} and data-onsets = [[quarter notes, "id id ..."], ...] (app_render.py).
  const cache = new WeakMap();
  const lit = new WeakMap();

  function dataOf(sheet) {  // parsed once per version of the data (the page may patch the element)
    const raw = sheet.dataset.playhead + "|" + (sheet.dataset.onsets || "[]");
    let d = cache.get(sheet);
    if (!d || d.raw !== raw) {
      d = JSON.parse(sheet.dataset.playhead);
      d.onsets = JSON.parse(sheet.dataset.onsets || "[]");
      d.raw = raw;
      cache.set(sheet, d);
    }
    return d;
  }

  function quarters(t, tempo) {  // seconds of audio -> quarter notes from the start
    let e = tempo[0];
    for (const x of tempo) { if (x[0] <= t) e = x; else break; }
    return e[1] + (t - e[0]) * e[2] / 60;
  }

  function scroller(el) {  // the nearest ancestor that scrolls vertically
    for (let e = el.parentElement; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (/(auto|scroll)/.test(s.overflowY) && e.scrollHeight > e.clientHeight + 1) return e;
    }
    return null;
  }

  function visible(el) { return el.getClientRects().length > 0; }

  function bring(el, top) {  // scroll the score's box (never the page) so el is in view
    const box = scroller(el);
    if (!box) return;
    const r = el.getBoundingClientRect(), b = box.getBoundingClientRect();
    if (top) box.scrollTop += r.top - b.top - 48;  // room for the box's label
    else if (r.top < b.top || r.bottom > b.bottom) box.scrollTop += r.top - b.top - b.height / 3;
  }

  function drawn(player) {  // the roll image's box and where the image is drawn in it (object-fit: contain)
    const img = player.querySelector(".result-roll img");
    if (!img || !img.naturalWidth) return null;
    const box = img.parentElement;
    if (getComputedStyle(box).position === "static") box.style.position = "relative";
    const r = img.getBoundingClientRect(), b = box.getBoundingClientRect();
    const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
    const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
    return { box, x0: r.left - b.left + (r.width - w) / 2, y0: r.top - b.top + (r.height - h) / 2, w, h };
  }

  function overlay(box, cls) {  // the box's one element of class cls, made the first time
    let el = box.querySelector(`:scope > .${cls}`);
    if (!el) {
      el = document.createElement("div");
      el.className = cls;
      box.appendChild(el);
    }
    return el;
  }

  function cursor(player, frac, show) {
    const g = drawn(player);
    if (!g) return;
    const line = overlay(g.box, "playhead");
    line.style.left = `${g.x0 + frac * g.w - 1}px`;
    line.style.top = `${g.y0}px`;
    line.style.height = `${g.h}px`;
    line.style.display = show ? "block" : "none";
    line.dataset.fraction = frac.toFixed(4);
  }

  // The bars typed for a rewrite ("9-12"), shaded on the rolls they belong to: the seed's, or
  // the variations' (as the form's "Rewrite bars" choice says); each roll knows its bar numbers.
  function chosenBars() {
    const input = document.querySelector("#infill-bars textarea, #infill-bars input");
    const m = input && input.value.replace(/[–—]/g, "-").replace(/\s/g, "").match(/^(\d+)(?:-(\d+))?$/);
    return m ? [Number(m[1]), Number(m[2] || m[1])] : null;
  }

  function shade(player, range) {
    const g = drawn(player);
    const sheet = player.querySelector(".sheet[data-playhead]");
    if (!g) return;
    const band = overlay(g.box, "bar-range");
    const d = sheet && dataOf(sheet);
    const bars = (d && d.bars) || [];
    const start = range && bars.find((b) => b[0] === range[0]);
    if (!start || range[1] < range[0]) {
      band.style.display = "none";
      delete band.dataset.bars;
      return;
    }
    const after = bars.find((b) => b[0] === range[1] + 1);
    const [left, right, span] = d.roll;
    const x = (q) => g.x0 + g.w * (left + (right - left) * Math.min(Math.max(span ? q / span : 0, 0), 1));
    const x0 = x(start[1]), x1 = x(after ? after[1] : span);
    Object.assign(band.style, { left: `${x0}px`, width: `${Math.max(x1 - x0, 2)}px`, top: `${g.y0}px`,
                                height: `${g.h}px`, display: "block" });
    band.dataset.bars = `${range[0]}-${range[1]}`;
  }

  function shadeAll() {
    const range = chosenBars();
    const source = document.querySelector("#infill-source input:checked");
    const where = source && source.value === "result" ? "[id^='variation-']" : "#seed-tab";
    document.querySelectorAll(".player").forEach((p) => shade(p, p.closest(where) ? range : null));
  }

  function light(sheet, onsets, q) {  // the notes struck at the last onset at or before q
    let lo = 0, hi = onsets.length - 1, at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (onsets[mid][0] <= q + 1e-6) { at = mid; lo = mid + 1; } else hi = mid - 1;
    }
    const before = lit.get(sheet);
    if (before && before.at === at && before.els.every((el) => el.isConnected)) return;
    if (before) before.els.forEach((el) => el.classList.remove("playing"));
    const els = at < 0 ? [] : onsets[at][1].split(" ").flatMap((id) => [...sheet.querySelectorAll(`[id="${id}"]`)]);
    els.forEach((el) => el.classList.add("playing"));
    lit.set(sheet, { at, els });
    const shown = els.find(visible);
    if (shown) bring(shown, false);
  }

  function update(player) {
    const audio = player.querySelector("audio");
    const sheet = player.querySelector(".sheet[data-playhead]");
    if (!audio || !sheet) return false;
    const playing = !audio.paused && !audio.ended;
    const d = dataOf(sheet);
    const q = quarters(audio.currentTime, d.tempo);
    const [left, right, span] = d.roll;
    const frac = left + (right - left) * Math.min(Math.max(span ? q / span : 0, 0), 1);
    cursor(player, frac, playing || audio.currentTime > 0);
    if (d.onsets.length) light(sheet, d.onsets, playing || audio.currentTime > 0 ? q : -1);
    return playing;
  }

  let running = false;
  function tick() {
    let any = false;
    document.querySelectorAll(".player").forEach((p) => { any = update(p) || any; });
    if (any) requestAnimationFrame(tick);
    else running = false;
  }
  function kick() {
    if (!running) { running = true; requestAnimationFrame(tick); }
  }
  // media events do not bubble, but a capturing listener on the document hears them all
  for (const ev of ["play", "playing", "seeked", "timeupdate", "pause", "ended", "emptied"]) {
    document.addEventListener(ev, kick, true);
  }

  // A score opens at its new music: once engraved and on screen, its box scrolls there.
  setInterval(() => {
    shadeAll();
    document.querySelectorAll(".sheet:not([data-opened])").forEach((sheet) => {
      const copy = [...sheet.querySelectorAll(".sheet-wide, .sheet-narrow")].find(visible);
      if (!copy) return;
      const label = [...copy.querySelectorAll("text")].find((t) => /^(continuation|rewritten)$/.test(t.textContent.trim()));
      if (label) bring(label, true);
      sheet.dataset.opened = label ? "continuation" : "start";
    });
  }, 300);
}
