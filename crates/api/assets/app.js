// twinshield dashboard. Plain JS, no dependencies, served under
// "Content-Security-Policy: default-src 'self'" (no inline script or style).
//
// After a token is entered (kept in sessionStorage), it reads /api/v1/twin,
// /api/v1/alarms, /api/v1/security, the last WINDOW_S of /api/v1/history
// (drawn before live data, so the charts open filled) and then the
// /api/v1/live server-sent events stream. The stream is read with fetch()
// and a ReadableStream parser because EventSource cannot send the
// Authorization header.
//
// Stable hooks for the browser test (tests/browser/dashboard_e2e.py):
//   #login, #token, #login-button, #login-error, #logout, #status,
//   #last-update (latest plant time, changes with every state event),
//   #charts (data-history: loading|drawn|empty|unavailable, once the
//     history was asked for) with canvas.chart[data-channel]
//     [data-kind=value|residual] (data-points: samples drawn, data-span:
//     seconds from the oldest to the newest drawn, data-markers: alarm
//     markers drawn),
//   #alarms with li.alarm[data-id] (classes active|cleared, acknowledged)
//     and button.ack, #security, #message.
'use strict';

(function () {
  const API = '/api/v1';
  const TOKEN_KEY = 'twinshield.token';
  const WINDOW_S = 600;           // rolling window of plant time
  const HISTORY_STEP_S = 1;       // bucket of the history the charts open with
  const HISTORY_WAIT_MS = 5000;   // live data waits at most this for the history
  const MIN_SPAN_S = 20;          // narrowest time axis while data builds up
  const STALL_MS = 10000;         // no bytes on /live for this long: reconnect
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const SECURITY_EVERY_MS = 15000;

  const $ = (sel) => document.querySelector(sel);

  const S = {
    token: null,
    gen: 0,               // bumped on logout: stale async work checks it
    channels: [],         // [{name, unit}]
    views: new Map(),     // name -> {card, value, residual, readout}
    series: new Map(),    // name -> [{t, m, e, r, th}]
    alarms: new Map(),    // id -> alarm
    latest: null,         // newest plant time seen (s)
    first: null,          // oldest plant time drawn (s)
    canAck: true,         // false after a 403 on acknowledge
    stream: null,         // AbortController of the /live fetch
    backoff: BACKOFF_MIN_MS,
    reconnectTimer: null,
    connects: 0,          // successful /live connections in this session
    securityTimer: null,
    dirty: false,
  };

  class HttpError extends Error {
    constructor(status, reason) {
      super(reason);
      this.status = status;
    }
  }

  // ---------------------------------------------------------------- messages

  function showMessage(text, kind) {
    $('#message-text').textContent = text;
    const box = $('#message');
    box.classList.toggle('error', kind === 'error');
    box.hidden = false;
  }

  function clearMessage() {
    $('#message').hidden = true;
    $('#message-text').textContent = '';
  }

  function setStatus(kind, text) {
    const el = $('#status');
    el.className = 'status status-' + kind;
    el.textContent = text;
  }

  function describe(err) {
    if (err instanceof HttpError) {
      switch (err.status) {
        case 401: return 'token refused (401)';
        case 403: return 'not allowed for this token\'s role (403)';
        case 404: return 'not found (404)';
        case 429: return 'too many requests (429): slow down';
        case 503: return 'twin unavailable (503)';
        default: return 'HTTP ' + err.status + (err.message ? ' (' + err.message + ')' : '');
      }
    }
    return 'cannot reach the twin';
  }

  // --------------------------------------------------------------------- API

  async function api(path, options) {
    const opts = options || {};
    const gen = S.gen;
    const headers = { Authorization: 'Bearer ' + S.token, Accept: 'application/json' };
    let body;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    const res = await fetch(API + path, {
      method: opts.method || 'GET', headers, body, cache: 'no-store', redirect: 'error',
    });
    if (gen !== S.gen) throw new HttpError(0, 'signed out');
    if (res.status === 401) {
      tokenRefused();
      throw new HttpError(401, 'unauthorized');
    }
    if (!res.ok) {
      let reason = '';
      try { reason = (await res.json()).error || ''; } catch (_) { /* generic body */ }
      throw new HttpError(res.status, reason);
    }
    return res.json();
  }

  // ---------------------------------------------------------- login / logout

  function tokenRefused() {
    if (S.token === null) return;
    logout($('#dashboard').hidden
      ? 'Token refused (401): check the token and try again.'
      : 'Token refused (401): the token was revoked or has expired; sign in again.');
  }

  async function login(token) {
    const btn = $('#login-button');
    const err = $('#login-error');
    err.hidden = true;
    btn.disabled = true;
    S.token = token;
    const gen = S.gen;
    let twin;
    try {
      twin = await api('/twin');
    } catch (e) {
      btn.disabled = false;
      if (gen !== S.gen) return;   // 401: logout() already showed why
      S.token = null;
      err.textContent = 'Sign-in failed: ' + describe(e) + '.';
      err.hidden = false;
      return;
    }
    btn.disabled = false;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('#token').value = '';
    clearMessage();
    // Offer acknowledging only to roles that may (the server decides
    // anyway: a 403 still turns the buttons off).
    try {
      const me = await api('/whoami');
      S.canAck = me.role === 'operator' || me.role === 'admin';
    } catch (e) {
      if (gen !== S.gen) return;
    }
    startDashboard(twin);
  }

  function logout(reason) {
    S.gen += 1;
    S.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (S.stream) S.stream.abort();
    S.stream = null;
    clearTimeout(S.reconnectTimer);
    clearTimeout(S.securityTimer);
    S.channels = [];
    S.views.clear();
    S.series.clear();
    S.alarms.clear();
    S.latest = null;
    S.first = null;
    S.canAck = true;
    S.backoff = BACKOFF_MIN_MS;
    S.connects = 0;
    $('#charts').textContent = '';
    delete $('#charts').dataset.history;
    $('#alarms').textContent = '';
    $('#security').textContent = '–';
    $('#last-update').textContent = '–';
    $('#active-count').textContent = '–';
    $('#twin-name').textContent = '';
    $('#dashboard').hidden = true;
    $('#logout').hidden = true;
    $('#plant-time-box').hidden = true;
    $('#active-box').hidden = true;
    $('#login').hidden = false;
    setStatus('down', 'signed out');
    const err = $('#login-error');
    if (reason) {
      err.textContent = reason;
      err.hidden = false;
    } else {
      err.hidden = true;
    }
    clearMessage();
    $('#token').focus();
  }

  function startDashboard(twin) {
    $('#login').hidden = true;
    $('#dashboard').hidden = false;
    $('#logout').hidden = false;
    $('#plant-time-box').hidden = false;
    $('#active-box').hidden = false;
    $('#twin-name').textContent = [twin.name, twin.version].filter(Boolean).join(' ');
    S.channels = (twin.channels || []).map((c) => ({ name: String(c.name), unit: String(c.unit || '') }));
    for (const c of S.channels) ensureChannel(c.name, c.unit);
    renderAlarms();
    loadAlarms();
    loadSecurity();
    // Live data only after the history is drawn (or given up on), so the
    // charts open with the last minutes instead of growing from empty.
    const gen = S.gen;
    const waited = new Promise((resolve) => setTimeout(resolve, HISTORY_WAIT_MS));
    Promise.race([loadHistory().catch(() => {}), waited]).then(() => {
      if (gen === S.gen) connect();
    });
  }

  // ----------------------------------------------------------------- history

  // The last WINDOW_S before the twin's latest state, both series of every
  // channel, in the twin's own time base (plant seconds in the demo, Unix
  // seconds in `run`): "now" comes from /state, never from this clock.
  // Without a history (503) the charts start empty, as live data builds.
  async function loadHistory() {
    const gen = S.gen;
    const box = $('#charts');
    box.dataset.history = 'loading';
    let st;
    try {
      st = await api('/state');
    } catch (e) {
      if (gen === S.gen) box.dataset.history = 'unavailable';
      return;
    }
    if (gen !== S.gen) return;
    const now = Number(st.time_s);
    if (!Number.isFinite(now) || !(Number(st.samples) > 0)) {
      box.dataset.history = 'empty';
      return;
    }
    // The band is not recorded: the latest one stands in for the past
    // (it is the innovation's spread, which moves slowly once settled).
    const bands = new Map((st.channels || []).map((c) => [String(c.name), Number(c.threshold)]));
    const query = (name, series) => api('/history?' + new URLSearchParams({
      channel: name, series, from: String(now - WINDOW_S), to: String(now), step: String(HISTORY_STEP_S),
    }));
    const got = await Promise.all(S.channels.map((c) =>
      Promise.all([query(c.name, 'measured'), query(c.name, 'residual')]).catch(() => null)));
    if (gen !== S.gen) return;
    let drawn = 0;
    let failed = 0;
    got.forEach((pair, i) => {
      const name = S.channels[i].name;
      if (pair === null) failed += 1;
      else drawn += mergeHistory(name, joinHistory(pair[0], pair[1], bands.get(name)), now);
    });
    box.dataset.history = failed ? 'unavailable' : drawn ? 'drawn' : 'empty';
    S.dirty = true;
  }

  // One chart point per bucket, at its middle: the measured and residual
  // means (the estimate is their difference, as live: measured - residual).
  function joinHistory(measured, residual, band) {
    const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
    const step = num(measured.step_s) || HISTORY_STEP_S;
    const res = new Map();
    for (const p of residual.points || []) res.set(p.time_s, num(p.mean));
    const th = num(band);
    const out = [];
    for (const p of measured.points || []) {
      const start = num(p.time_s);
      if (start === null) continue;
      const m = num(p.mean);
      const r = res.has(p.time_s) ? res.get(p.time_s) : null;
      out.push({ t: start + step / 2, m, e: m !== null && r !== null ? m - r : null, r, th });
    }
    return out.sort((a, b) => a.t - b.t);
  }

  // Puts recorded points in front of the live ones (older than the first
  // live point: live data may have begun if the history was slow).
  function mergeHistory(name, pts, now) {
    const arr = S.series.get(name);
    if (!arr) return 0;
    if (S.latest === null || now > S.latest) S.latest = now;
    const before = arr.length ? arr[0].t : Infinity;
    const cut = S.latest - WINDOW_S;
    const older = pts.filter((p) => p.t < before && p.t >= cut);
    if (!older.length) return 0;
    arr.unshift(...older);
    if (S.first === null || older[0].t < S.first) S.first = older[0].t;
    return older.length;
  }

  // ---------------------------------------------------------------- channels

  function ensureChannel(name, unit) {
    let v = S.views.get(name);
    if (v) return v;
    const card = document.createElement('section');
    card.className = 'channel';
    card.dataset.channel = name;

    const head = document.createElement('header');
    const h = document.createElement('h2');
    h.textContent = name;
    const u = document.createElement('span');
    u.className = 'unit';
    u.textContent = unit ? '[' + unit + ']' : '';
    h.appendChild(u);
    const readout = document.createElement('span');
    readout.className = 'readout num';
    readout.textContent = 'waiting for data';
    head.append(h, readout);

    const value = document.createElement('canvas');
    value.className = 'chart chart-value';
    value.dataset.channel = name;
    value.dataset.kind = 'value';
    value.setAttribute('role', 'img');
    value.setAttribute('aria-label', name + ': plant measurement and twin estimate');

    const lbl = document.createElement('p');
    lbl.className = 'chart-label';
    lbl.textContent = 'residual (measurement − estimate) and ±threshold';

    const residual = document.createElement('canvas');
    residual.className = 'chart chart-residual';
    residual.dataset.channel = name;
    residual.dataset.kind = 'residual';
    residual.setAttribute('role', 'img');
    residual.setAttribute('aria-label', name + ': residual against its threshold');

    card.append(head, value, lbl, residual);
    $('#charts').appendChild(card);
    v = { card, value, residual, readout, unit };
    S.views.set(name, v);
    S.series.set(name, []);
    S.dirty = true;
    return v;
  }

  const fmt = (x, d) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));

  function onState(st) {
    const t = Number(st.time_s);
    if (!Number.isFinite(t)) return;
    if (S.latest !== null && t < S.latest - 1) {
      // The twin restarted (plant time went back): start the window anew.
      for (const arr of S.series.values()) arr.length = 0;
      S.first = null;
    }
    if (S.first === null) S.first = t;
    S.latest = t;
    const cut = t - WINDOW_S;
    for (const c of st.channels || []) {
      const v = ensureChannel(String(c.name), c.unit);
      const arr = S.series.get(String(c.name));
      const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
      const p = { t, m: num(c.measured), e: num(c.estimate), r: num(c.residual), th: num(c.threshold) };
      if (arr.length && arr[arr.length - 1].t === t) arr[arr.length - 1] = p; else arr.push(p);
      let drop = 0;
      while (drop < arr.length && arr[drop].t < cut) drop += 1;
      if (drop) arr.splice(0, drop);
      const over = p.r !== null && p.th !== null && Math.abs(p.r) > p.th;
      v.readout.textContent = '';
      const parts = [['meas', fmt(p.m, 2)], ['est', fmt(p.e, 2)], ['res', fmt(p.r, 2)], ['thr', '±' + fmt(p.th, 2)]];
      parts.forEach(([k, val], i) => {
        if (i) v.readout.append(' · ');
        v.readout.append(k + ' ');
        const b = document.createElement('b');
        b.textContent = val;
        if (k === 'res' && over) b.className = 'over';
        v.readout.append(b);
      });
    }
    $('#last-update').textContent = t.toFixed(1) + ' s';
    const active = Number(st.active_alarms);
    const ac = $('#active-count');
    ac.textContent = Number.isFinite(active) ? String(active) : '–';
    ac.classList.toggle('nonzero', active > 0);
    S.dirty = true;
  }

  // ------------------------------------------------------------------ alarms

  async function loadAlarms() {
    const gen = S.gen;
    try {
      const body = await api('/alarms');
      if (gen !== S.gen) return;
      for (const a of body.alarms || []) mergeAlarm(a);
      renderAlarms();
      S.dirty = true;
    } catch (e) {
      if (gen !== S.gen || (e instanceof HttpError && e.status === 401)) return;
      showMessage('Could not load the alarm list: ' + describe(e) + '.', 'error');
    }
  }

  // An alarm only moves forward (raised -> cleared, unacknowledged ->
  // acknowledged): a list fetched before an event must not undo the event.
  function mergeAlarm(a) {
    if (a === null || typeof a !== 'object' || a.id === undefined) return;
    const old = S.alarms.get(a.id);
    if (old) {
      a = Object.assign({}, a, {
        acknowledged: a.acknowledged === true || old.acknowledged === true,
        cleared_at_s: a.cleared_at_s ?? old.cleared_at_s ?? null,
      });
    }
    S.alarms.set(a.id, a);
  }

  function onAlarm(a) {
    mergeAlarm(a);
    renderAlarms();
    S.dirty = true;
  }

  function alarmChannels(a) {
    return Array.isArray(a.channels) ? a.channels.map(String) : [];
  }

  function renderAlarms() {
    const list = $('#alarms');
    const alarms = [...S.alarms.values()].sort((x, y) => (y.raised_at_s - x.raised_at_s) || (y.id > x.id ? 1 : -1));
    const keep = new Set(alarms.map((a) => String(a.id)));
    for (const li of [...list.children]) {
      if (!li.classList.contains('alarm') || !keep.has(li.dataset.id)) li.remove();
    }
    if (alarms.length === 0) {
      const li = document.createElement('li');
      li.className = 'empty';
      li.textContent = 'No alarms.';
      list.appendChild(li);
    }
    let prev = null;
    for (const a of alarms) {
      const id = String(a.id);
      let li = list.querySelector('li.alarm[data-id="' + CSS.escape(id) + '"]');
      if (!li) li = buildAlarmItem(id);
      updateAlarmItem(li, a);
      // keep newest first without recreating nodes (the test holds references)
      const want = prev ? prev.nextSibling : list.firstChild;
      if (want !== li) list.insertBefore(li, want);
      prev = li;
    }
    for (const [name, v] of S.views) {
      const inAlarm = alarms.some((a) => a.cleared_at_s === null && alarmChannels(a).includes(name));
      v.card.classList.toggle('in-alarm', inAlarm);
    }
  }

  function buildAlarmItem(id) {
    const li = document.createElement('li');
    li.className = 'alarm';
    li.dataset.id = id;
    const title = document.createElement('div');
    title.className = 'alarm-title';
    const meta = document.createElement('div');
    meta.className = 'alarm-meta num';
    li.append(title, meta);
    return li;
  }

  function updateAlarmItem(li, a) {
    const cleared = a.cleared_at_s !== null && a.cleared_at_s !== undefined;
    const acked = a.acknowledged === true;
    li.classList.toggle('active', !cleared);
    li.classList.toggle('cleared', cleared);
    li.classList.toggle('acknowledged', acked);
    const title = li.querySelector('.alarm-title');
    title.textContent = '#' + a.id + ' ' + (a.detector || 'alarm') + ' · ' + (alarmChannels(a).join(', ') || 'all channels');
    const tag = (cls, text) => {
      const s = document.createElement('span');
      s.className = 'tag ' + cls;
      s.textContent = text;
      return s;
    };
    const meta = li.querySelector('.alarm-meta');
    meta.textContent = '';
    meta.append(cleared ? tag('tag-cleared', 'CLEARED') : tag('tag-active', 'ACTIVE'));
    if (acked) meta.append(tag('tag-ack ack-state', 'ACKNOWLEDGED'));
    meta.append(' raised ' + fmt(a.raised_at_s, 1) + ' s' +
      (cleared ? ' · cleared ' + fmt(a.cleared_at_s, 1) + ' s' : ''));
    let btn = li.querySelector('button.ack');
    if (!acked && S.canAck) {
      if (!btn) {
        btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'ack';
        btn.textContent = 'Acknowledge';
        btn.addEventListener('click', () => acknowledge(a.id, btn));
        li.appendChild(btn);
      }
    } else if (btn) {
      btn.remove();
    }
  }

  async function acknowledge(id, btn) {
    btn.disabled = true;
    btn.textContent = 'Acknowledging…';
    try {
      const a = await api('/alarms/' + encodeURIComponent(id) + '/ack', { method: 'POST', body: {} });
      onAlarm(a);
    } catch (e) {
      if (e instanceof HttpError && e.status === 401) return;
      btn.disabled = false;
      btn.textContent = 'Acknowledge';
      if (e instanceof HttpError && e.status === 403) {
        S.canAck = false;
        renderAlarms();
        showMessage('Acknowledging alarms needs an operator or admin token: this token may only view (403).', 'error');
      } else if (e instanceof HttpError && e.status === 404) {
        showMessage('Alarm #' + id + ' is not known to the twin (404).', 'error');
        loadAlarms();
      } else {
        showMessage('Acknowledge failed: ' + describe(e) + '.', 'error');
      }
    }
  }

  // ---------------------------------------------------------------- security

  async function loadSecurity() {
    const gen = S.gen;
    const box = $('#security');
    clearTimeout(S.securityTimer);
    try {
      const sec = await api('/security');
      if (gen !== S.gen) return;
      box.textContent = '';
      const verdict = document.createElement('div');
      verdict.className = 'verdict';
      if (sec.protected && !sec.degraded) {
        verdict.classList.add('ok');
        verdict.textContent = 'PROTECTED';
      } else if (sec.protected) {
        verdict.classList.add('warn');
        verdict.textContent = 'PROTECTED · DEGRADED';
      } else {
        verdict.classList.add('bad');
        verdict.textContent = 'NOT PROTECTED';
      }
      box.appendChild(verdict);
      const findings = Array.isArray(sec.findings) ? sec.findings : [];
      if (findings.length) {
        const ul = document.createElement('ul');
        for (const f of findings) {
          const li = document.createElement('li');
          li.textContent = [f.class, f.action].filter(Boolean).join(' / ') + ': ' + (f.what || '');
          ul.appendChild(li);
        }
        box.appendChild(ul);
      } else {
        const p = document.createElement('div');
        p.className = 'note';
        p.textContent = 'no findings';
        box.appendChild(p);
      }
      S.securityTimer = setTimeout(loadSecurity, SECURITY_EVERY_MS);
    } catch (e) {
      if (gen !== S.gen || (e instanceof HttpError && e.status === 401)) return;
      box.textContent = '';
      const p = document.createElement('div');
      p.className = 'note';
      if (e instanceof HttpError && e.status === 403) {
        p.textContent = 'admin token needed to see the shield\'s status.';
        box.appendChild(p);
        return;   // the role will not change: no polling
      }
      p.textContent = 'status unavailable: ' + describe(e);
      box.appendChild(p);
      S.securityTimer = setTimeout(loadSecurity, SECURITY_EVERY_MS);
    }
  }

  // ------------------------------------------------------- the /live stream

  // Server-sent events parser (WHATWG "event stream interpretation").
  class SseParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.decoder = new TextDecoder('utf-8');
      this.buf = '';
      this.type = '';
      this.data = [];
      this.retry = null;
    }

    push(bytes) {
      this.buf += this.decoder.decode(bytes, { stream: true });
      for (;;) {
        const m = /\r\n|\r|\n/.exec(this.buf);
        if (!m) break;
        // a lone CR at the very end may be the first half of CRLF
        if (m[0] === '\r' && m.index === this.buf.length - 1) break;
        const line = this.buf.slice(0, m.index);
        this.buf = this.buf.slice(m.index + m[0].length);
        this.line(line);
      }
    }

    line(line) {
      if (line === '') {
        if (this.data.length) this.onEvent(this.type || 'message', this.data.join('\n'));
        this.type = '';
        this.data = [];
        return;
      }
      if (line[0] === ':') return;   // comment / keep-alive
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') this.type = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    }
  }

  function dispatch(type, data) {
    if (type === 'resync') {
      // the server dropped events for this slow reader: refetch the list
      loadAlarms();
      return;
    }
    let body;
    try { body = JSON.parse(data); } catch (_) { return; }
    if (type === 'state') onState(body);
    else if (type === 'alarm') onAlarm(body);
  }

  async function connect() {
    const gen = S.gen;
    clearTimeout(S.reconnectTimer);
    if (S.stream) S.stream.abort();
    const ctrl = new AbortController();
    S.stream = ctrl;
    setStatus('wait', 'connecting…');
    let stall = null;
    const kick = () => {
      clearTimeout(stall);
      stall = setTimeout(() => ctrl.abort(), STALL_MS);
    };
    let why = 'stream ended';
    let gotEvent = false;
    const parser = new SseParser((type, data) => {
      if (gen !== S.gen) return;
      if (!gotEvent) {
        gotEvent = true;
        S.backoff = BACKOFF_MIN_MS;
        setStatus('live', 'live');
      }
      dispatch(type, data);
    });
    try {
      kick();
      const res = await fetch(API + '/live', {
        headers: { Authorization: 'Bearer ' + S.token, Accept: 'text/event-stream' },
        cache: 'no-store', redirect: 'error', signal: ctrl.signal,
      });
      if (gen !== S.gen) return;
      if (res.status === 401) {
        tokenRefused();
        return;
      }
      if (!res.ok || !res.body) throw new HttpError(res.status, '');
      setStatus('live', 'live');
      // alarm events may have been missed while disconnected
      if (S.connects++ > 0) loadAlarms();
      const reader = res.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (gen !== S.gen) return;
        kick();
        parser.push(value);
      }
    } catch (e) {
      if (gen !== S.gen) return;
      why = ctrl.signal.aborted ? 'no data for ' + STALL_MS / 1000 + ' s' : describe(e);
      if (e instanceof HttpError && e.status === 403) {
        setStatus('down', 'live stream forbidden');
        showMessage('This token may not read the live stream (403).', 'error');
        return;
      }
    } finally {
      clearTimeout(stall);
    }
    if (gen !== S.gen) return;
    const base = parser.retry !== null ? Math.max(parser.retry, S.backoff) : S.backoff;
    const wait = Math.min(BACKOFF_MAX_MS, base) * (0.8 + 0.4 * Math.random());
    S.backoff = Math.min(BACKOFF_MAX_MS, S.backoff * 2);
    setStatus('wait', 'reconnecting in ' + Math.ceil(wait / 1000) + ' s (' + why + ')');
    S.reconnectTimer = setTimeout(connect, wait);
  }

  // ------------------------------------------------------------------ charts

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  }

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  let palette = null;

  function colours() {
    if (!palette) {
      palette = {
        grid: '#2c323a', axis: '#8b96a3', zero: '#4a535e',
        measured: css('--measured'), estimate: css('--estimate'), residual: css('--residual'),
        band: css('--band'), bandLine: '#6f8aa3',
        alarm: css('--alarm'), acked: css('--acked'), cleared: css('--cleared'),
      };
    }
    return palette;
  }

  function prepare(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(50, canvas.clientWidth);
    const h = Math.max(40, canvas.clientHeight);
    const pw = Math.round(w * dpr);
    const ph = Math.round(h * dpr);
    if (canvas.width !== pw || canvas.height !== ph) {
      canvas.width = pw;
      canvas.height = ph;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  function drawChart(canvas, kind, name, pts) {
    const C = colours();
    const { ctx, w, h } = prepare(canvas);
    const pad = { l: 48, r: 8, t: 10, b: 18 };
    const pw = w - pad.l - pad.r;
    const ph = h - pad.t - pad.b;
    // Time axis: from the first sample seen (or an alarm raised shortly
    // before it) to the newest sample, at least MIN_SPAN_S wide; once that
    // is longer than WINDOW_S, the last WINDOW_S with "now" at the right.
    const now = S.latest === null ? 0 : S.latest;
    let from = S.first === null ? now : S.first;
    for (const a of S.alarms.values()) {
      const ta = Number(a.raised_at_s);
      if (Number.isFinite(ta) && ta >= now - WINDOW_S && ta - 2 < from) from = ta - 2;
    }
    const t0 = Math.max(from, now - WINDOW_S);
    const t1 = Math.max(now, t0 + MIN_SPAN_S);
    const span = t1 - t0;
    const X = (t) => pad.l + ((t - t0) / span) * pw;

    // y range
    let lo = Infinity;
    let hi = -Infinity;
    if (kind === 'value') {
      for (const p of pts) {
        for (const y of [p.m, p.e]) if (y !== null) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
      }
      if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
      const span = Math.max(hi - lo, 1e-6, Math.abs(hi) * 0.02);
      const mid = (hi + lo) / 2;
      lo = mid - span * 0.6;
      hi = mid + span * 0.6;
    } else {
      let m = 0;
      for (const p of pts) {
        if (p.r !== null) m = Math.max(m, Math.abs(p.r));
        if (p.th !== null) m = Math.max(m, p.th);
      }
      if (m === 0) m = 1;
      hi = m * 1.15;
      lo = -hi;
    }
    const Y = (y) => pad.t + (1 - (y - lo) / (hi - lo)) * ph;

    // grid and axes
    ctx.font = '11px ui-monospace, "DejaVu Sans Mono", monospace';
    ctx.lineWidth = 1;
    ctx.strokeStyle = C.grid;
    ctx.fillStyle = C.axis;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    const ys = niceStep(hi - lo, kind === 'value' ? 4 : 3);
    const yd = Math.max(0, -Math.floor(Math.log10(ys)));
    for (let y = Math.ceil(lo / ys) * ys; y <= hi + 1e-9; y += ys) {
      const py = Math.round(Y(y)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.l, py);
      ctx.lineTo(w - pad.r, py);
      ctx.stroke();
      ctx.fillText((Math.abs(y) < ys / 1e6 ? 0 : y).toFixed(yd), pad.l - 6, py);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const xs = niceStep(span, Math.max(2, Math.floor(pw / 90)));
    for (let t = Math.ceil(t0 / xs) * xs; t <= t1 + 1e-9; t += xs) {
      const px = Math.round(X(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(px, pad.t);
      ctx.lineTo(px, pad.t + ph);
      ctx.stroke();
      if (t >= 0 && px > pad.l + 14 && px < w - pad.r - 14) ctx.fillText(t.toFixed(xs < 1 ? 1 : 0) + ' s', px, pad.t + ph + 4);
    }
    ctx.strokeStyle = C.zero;
    ctx.strokeRect(pad.l + 0.5, pad.t + 0.5, pw - 1, ph - 1);

    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.l, pad.t, pw, ph);
    ctx.clip();

    // alarm shading (under the data)
    const marks = [];
    for (const a of S.alarms.values()) {
      const chs = alarmChannels(a);
      if (chs.length && !chs.includes(name)) continue;
      const ta = Number(a.raised_at_s);
      if (!Number.isFinite(ta)) continue;
      const cleared = a.cleared_at_s !== null && a.cleared_at_s !== undefined;
      const tb = cleared ? Number(a.cleared_at_s) : Math.max(ta, now);
      if (tb < t0 || ta > t1) continue;
      const col = cleared ? C.cleared : a.acknowledged ? C.acked : C.alarm;
      marks.push({ a, ta, col });
      ctx.globalAlpha = 0.12;
      ctx.fillStyle = col;
      ctx.fillRect(X(ta), pad.t, Math.max(1, X(tb) - X(ta)), ph);
      ctx.globalAlpha = 1;
    }

    const line = (get, colour, dash, width) => {
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      ctx.setLineDash(dash);
      ctx.beginPath();
      let pen = false;
      for (const p of pts) {
        const y = get(p);
        if (y === null) { pen = false; continue; }
        if (pen) ctx.lineTo(X(p.t), Y(y)); else ctx.moveTo(X(p.t), Y(y));
        pen = true;
      }
      ctx.stroke();
      ctx.setLineDash([]);
    };

    if (kind === 'value') {
      line((p) => p.m, C.measured, [], 1.3);
      line((p) => p.e, C.estimate, [], 1.6);
    } else {
      // ±threshold band
      const band = pts.filter((p) => p.th !== null);
      if (band.length) {
        ctx.fillStyle = C.band;
        ctx.beginPath();
        band.forEach((p, i) => (i ? ctx.lineTo(X(p.t), Y(p.th)) : ctx.moveTo(X(p.t), Y(p.th))));
        for (let i = band.length - 1; i >= 0; i--) ctx.lineTo(X(band[i].t), Y(-band[i].th));
        ctx.closePath();
        ctx.fill();
        line((p) => p.th, C.bandLine, [3, 3], 1);
        line((p) => (p.th === null ? null : -p.th), C.bandLine, [3, 3], 1);
      }
      ctx.strokeStyle = C.zero;
      ctx.beginPath();
      ctx.moveTo(pad.l, Math.round(Y(0)) + 0.5);
      ctx.lineTo(w - pad.r, Math.round(Y(0)) + 0.5);
      ctx.stroke();
      // residual, red where it leaves the band; one path per run of a
      // colour (minutes of points: one stroke per segment would be slow)
      ctx.lineWidth = 1.6;
      let prev = null;
      let pen = null;      // the point the current path ends at
      let colour = null;
      for (const p of pts) {
        if (p.r === null) { prev = null; continue; }
        if (prev) {
          const over = p.th !== null && (Math.abs(p.r) > p.th || Math.abs(prev.r) > p.th);
          const c = over ? C.alarm : C.residual;
          if (c !== colour) {
            if (colour !== null) ctx.stroke();
            ctx.strokeStyle = c;
            colour = c;
            ctx.beginPath();
            pen = null;
          }
          if (pen !== prev) ctx.moveTo(X(prev.t), Y(prev.r));
          ctx.lineTo(X(p.t), Y(p.r));
          pen = p;
        }
        prev = p;
      }
      if (colour !== null) ctx.stroke();
    }

    // alarm markers: a vertical line at raised_at_s with the alarm's id
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    ctx.font = 'bold 11px system-ui, "DejaVu Sans", sans-serif';
    for (const { a, ta, col } of marks) {
      if (ta < t0) continue;
      const px = Math.round(X(ta)) + 0.5;
      ctx.strokeStyle = col;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(px, pad.t);
      ctx.lineTo(px, pad.t + ph);
      ctx.stroke();
      if (kind === 'value') {
        ctx.fillStyle = col;
        const right = px + 34 > w - pad.r;
        ctx.textAlign = right ? 'right' : 'left';
        ctx.fillText('#' + a.id, right ? px - 4 : px + 4, pad.t + 2);
      }
    }
    ctx.restore();

    const drawn = pts.filter(kind === 'value' ? (p) => p.m !== null || p.e !== null : (p) => p.r !== null);
    canvas.dataset.points = String(drawn.length);
    canvas.dataset.span = drawn.length ? (drawn[drawn.length - 1].t - drawn[0].t).toFixed(1) : '0';
    canvas.dataset.markers = String(marks.filter((m) => m.ta >= t0).length);
  }

  function frame() {
    if (S.dirty && S.token !== null) {
      S.dirty = false;
      for (const [name, v] of S.views) {
        const pts = S.series.get(name) || [];
        drawChart(v.value, 'value', name, pts);
        drawChart(v.residual, 'residual', name, pts);
      }
    }
    requestAnimationFrame(frame);
  }

  // ------------------------------------------------------------------- start

  function init() {
    $('#login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = $('#token').value.trim();
      if (token) login(token);
    });
    $('#logout').addEventListener('click', () => logout(''));
    $('#message-close').addEventListener('click', clearMessage);
    window.addEventListener('resize', () => { S.dirty = true; });
    requestAnimationFrame(frame);
    // `#token=...` (what `twinshield demo` opens): used once, then wiped
    // from the address bar; a fragment never reaches the server.
    const m = /^#token=(tsk_[0-9a-f]{8}_[A-Za-z0-9_-]{43})$/.exec(window.location.hash);
    if (m) history.replaceState(null, '', window.location.pathname);
    const saved = m ? m[1] : sessionStorage.getItem(TOKEN_KEY);
    if (saved) login(saved); else $('#token').focus();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
}());
