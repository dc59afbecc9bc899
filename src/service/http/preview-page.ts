import { createHash } from 'node:crypto';

// The live preview page: plain HTML, CSS and JS in one response, no build step, nothing
// loaded from anywhere but this server (the Content-Security-Policy below enforces it).
// Labels come from files: they only ever reach the DOM through textContent.

const STYLE = `
:root { color-scheme: dark; --bg: #111214; --card: #1b1c20; --line: #2b2d33; --fg: #e9e9ec; --dim: #9b9ca4;
  --top: #4caf50; --bar: #3f7fe0; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; gap: .4rem 1.4rem; align-items: center; padding: .6rem 1rem;
  background: #17181b; border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
header h1 { font-size: 1rem; margin: 0; font-weight: 650; }
header h1 small { color: var(--dim); font-weight: 400; margin-left: .4rem; }
.field { font-size: .85rem; color: var(--dim); }
.field b { color: var(--fg); font-weight: 600; }
.ok { color: #8fdc98 !important; } .bad { color: #f19a9a !important; } .wait { color: #f0d58a !important; }
.badge { padding: .15rem .6rem; border-radius: 1rem; font-size: .8rem; font-weight: 600; background: var(--line); }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1rem; padding: 1rem; }
.cam { background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; transition: opacity .3s; }
.cam.stale { opacity: .55; }
.cam h2 { display: flex; justify-content: space-between; gap: 1rem; margin: 0; padding: .5rem .75rem; font-size: .95rem; }
.cam h2 .state { font-weight: 400; font-size: .8rem; color: var(--dim); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.frame { position: relative; background: #000; aspect-ratio: 4 / 3; display: flex; align-items: center; justify-content: center; }
.frame img { width: 100%; height: 100%; object-fit: contain; display: block; }
.frame .none { position: absolute; color: var(--dim); font-size: .85rem; }
.bars { list-style: none; margin: 0; padding: .5rem .75rem .25rem; min-height: 7.4rem; }
.bar { display: grid; grid-template-columns: minmax(0, 10rem) 1fr 3.6rem; gap: .6rem; align-items: center; font-size: .85rem; margin: .25rem 0; }
.bar .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar .track { background: var(--line); height: .85rem; border-radius: .45rem; overflow: hidden; }
.bar .fill { display: block; background: var(--bar); height: 100%; width: 0; transition: width .2s; }
.bar:first-child .fill { background: var(--top); }
.bar .score { text-align: right; font-variant-numeric: tabular-nums; }
.meta { display: flex; flex-wrap: wrap; gap: .2rem 1rem; padding: .25rem .75rem .65rem; font-size: .8rem; color: var(--dim); font-variant-numeric: tabular-nums; }
.meta b { color: var(--fg); font-weight: 600; }
.empty { color: var(--dim); }
`;

// No template literals or "${" inside: this text is itself a template literal.
const SCRIPT = `
'use strict';
(function () {
  var cams = {};
  var main = document.getElementById('cams');
  var frames = 0;
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function show(id, text, cls) { var e = $(id); e.textContent = text; e.className = cls || ''; }

  function card(id) {
    if (cams[id]) return cams[id];
    var empty = $('empty');
    if (empty) empty.remove();
    var c = { root: el('section', 'cam'), img: el('img'), none: el('span', 'none', 'no frame yet'), bars: el('ol', 'bars'),
      state: el('span', 'state', ''), loading: false, pending: false, seq: 0, last: 0 };
    c.root.dataset.camera = id;
    var h = el('h2');
    h.append(el('span', 'name', id), c.state);
    var frame = el('div', 'frame');
    c.img.alt = 'latest frame of ' + id;
    c.img.hidden = true;
    frame.append(c.img, c.none);
    var meta = el('div', 'meta');
    function field(label, cls) { var s = el('span', null, label + ' '); var b = el('b', cls, '\\u2013'); s.append(b); meta.append(s); return b; }
    c.fps = field('fps', 'fps');
    c.inference = field('inference', 'inference');
    c.preprocess = field('preprocess', 'preprocess');
    c.frameNo = field('frame', 'seq');
    c.source = field('source', 'source');
    c.root.append(h, frame, c.bars, meta);
    c.img.addEventListener('load', function () { c.loading = false; c.img.hidden = false; c.none.hidden = true; load(c, id); });
    // The next frame event asks again; no retry loop against a camera without frames.
    c.img.addEventListener('error', function () { c.loading = false; });
    var ids = Object.keys(cams).concat([id]).sort();
    var after = cams[ids[ids.indexOf(id) + 1]];
    main.insertBefore(c.root, after ? after.root : null);
    cams[id] = c;
    return c;
  }

  // One snapshot request in flight per camera: a slow link shows fewer frames, never a backlog.
  function load(c, id) {
    if (c.loading || !c.pending) return;
    c.pending = false;
    c.loading = true;
    frames += 1;
    c.img.src = '/snapshot/' + encodeURIComponent(id) + '.jpg?seq=' + c.seq + '&n=' + frames;
  }

  function bars(c, top) {
    while (c.bars.children.length < top.length) {
      var li = el('li', 'bar');
      var track = el('span', 'track');
      track.append(el('span', 'fill'));
      li.append(el('span', 'label'), track, el('span', 'score'));
      c.bars.append(li);
    }
    while (c.bars.children.length > top.length) c.bars.lastChild.remove();
    top.forEach(function (t, i) {
      var li = c.bars.children[i];
      var score = Math.max(0, Math.min(1, Number(t.score) || 0));
      li.dataset.label = t.label;
      li.dataset.score = String(score);
      li.title = t.label;
      li.querySelector('.label').textContent = t.label;
      li.querySelector('.fill').style.width = (score * 100).toFixed(1) + '%';
      li.querySelector('.score').textContent = (score * 100).toFixed(1) + '%';
    });
  }

  function ms(x) { return Number(x).toFixed(1) + ' ms'; }

  var es = new EventSource('/events');
  es.onopen = function () { show('conn', 'live', 'badge ok'); };
  es.onerror = function () {
    show('conn', 'disconnected, retrying\\u2026', 'badge bad');
    Object.keys(cams).forEach(function (id) { cams[id].root.classList.add('stale'); });
  };
  es.addEventListener('status', function (ev) {
    var s = JSON.parse(ev.data);
    $('device').textContent = s.device + ' \\u00b7 ' + s.version;
    show('model', s.model ? s.model.name + ' ' + s.model.version : 'none loaded', s.model ? '' : 'bad');
    if (s.model) $('model').title = 'sha256 ' + s.model.sha256;
    show('provider', s.model ? s.model.provider : '\\u2013');
    if (s.mqtt) {
      show('mqtt', (s.mqtt.connected ? 'connected' : 'disconnected') + (s.mqtt.queued ? ', ' + s.mqtt.queued + ' queued' : '') +
        (s.mqtt.dropped ? ', ' + s.mqtt.dropped + ' dropped' : ''), s.mqtt.connected ? 'ok' : 'bad');
    } else show('mqtt', 'not started', 'wait');
    show('update', s.update, s.update === 'failed' || s.update === 'rolled-back' ? 'bad' : '');
    show('ready', s.ready ? 'yes' : 'no', s.ready ? 'ok' : 'bad');
    // Cameras come and go with configuration reloads.
    var present = {};
    s.cameras.forEach(function (cs) { present[cs.id] = true; });
    Object.keys(cams).forEach(function (id) { if (!present[id]) { cams[id].root.remove(); delete cams[id]; } });
    s.cameras.forEach(function (cs) {
      var c = card(cs.id);
      c.state.textContent = cs.state + (cs.last_error ? ': ' + cs.last_error : '');
      c.state.title = c.state.textContent;
      c.state.className = 'state ' + (cs.state === 'online' ? 'ok' : cs.state === 'offline' ? 'bad' : 'wait');
      c.fps.textContent = Number(cs.fps).toFixed(1);
    });
  });
  es.addEventListener('frame', function (ev) {
    var f = JSON.parse(ev.data);
    var c = card(f.camera);
    bars(c, f.top);
    c.fps.textContent = Number(f.fps).toFixed(1);
    c.inference.textContent = ms(f.latency_ms.inference);
    c.preprocess.textContent = ms(f.latency_ms.preprocess);
    c.frameNo.textContent = '#' + f.seq;
    c.source.textContent = f.source;
    c.last = Date.now();
    c.root.classList.remove('stale');
    c.seq = f.seq;
    c.pending = true;
    load(c, f.camera);
  });
  // A camera whose frames stopped coming is dimmed, so an old picture is not mistaken for now.
  setInterval(function () {
    Object.keys(cams).forEach(function (id) { if (cams[id].last && Date.now() - cams[id].last > 5000) cams[id].root.classList.add('stale'); });
  }, 1000);
})();
`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Only this page's own script and style may run; images and the event stream only from here. */
export const PREVIEW_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const PREVIEW_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-classifier preview</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>edge-classifier<small id="device"></small></h1>
  <span id="conn" class="badge wait">connecting\u2026</span>
  <span class="field">model <b id="model">\u2013</b></span>
  <span class="field">provider <b id="provider">\u2013</b></span>
  <span class="field">MQTT <b id="mqtt">\u2013</b></span>
  <span class="field">update <b id="update">\u2013</b></span>
  <span class="field">ready <b id="ready">\u2013</b></span>
</header>
<main id="cams"><p class="empty" id="empty">Waiting for the daemon\u2026</p></main>
<script>${SCRIPT}</script>
</body>
</html>
`;
