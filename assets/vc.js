/* 视频连线 that connects (issue 11): the browser side of the app's own calls.
 *
 * Every screen (wall, duty desk, tablet) of a centre keeps one signalling stream open,
 * `/vc/events?centre=CODE` (SSE; dashboard/vc_api.py), and posts to `/vc/signal`. A call is
 * - p2p: WebRTC between the caller's screen and the callee centre's screen (non-trickle ICE:
 *   the whole SDP once gathering is done, at most 2 s), signalled through the app;
 * - sfu: 整体联动 in a Janus VideoRoom (room and pin from the server, janus.js vendored);
 * - sip: a registry `sip:` endpoint called through Janus's SIP plugin;
 * - (url: an outside conference page, opened by the Dash overlay, not here).
 * A callee wall answers by itself (PINGAN_VC_AUTO_ANSWER; it is unattended), a desk or a
 * tablet rings and may decline. A screen with no camera joins receive-only and says so. In
 * the demo a call to a centre with no screen open is answered by a simulated endpoint (a
 * test picture with the centre's name and a clock through a local WebRTC loopback, 模拟).
 * Media never passes through the web server.
 */
(function () {
  "use strict";

  var S = {
    centre: null, kind: "wall", source: null, peer: null, config: null, i18n: {},
    retries: 0, retryAt: 0, waiters: [],
    call: null,        // the call this screen is in
    ring: null,        // the call ringing here {cid, from, from_name, mode, group, timer}
    media: null,       // our camera/microphone stream, or null (receive-only)
    mediaNote: ""
  };

  function tr(key, fmt) {
    var s = S.i18n[key] || key;
    if (fmt) { Object.keys(fmt).forEach(function (k) { s = s.split("{" + k + "}").join(fmt[k]); }); }
    return s;
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "className") { e.className = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
    });
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  /* -- the signalling stream -------------------------------------------------------------- */
  function screenInfo() {
    var node = document.querySelector("[data-vc-centre]");
    if (!node) { return null; }
    var i18n = {};
    try { i18n = JSON.parse(node.getAttribute("data-vc-i18n") || "{}"); } catch (e) { i18n = {}; }
    return { centre: node.getAttribute("data-vc-centre"), kind: node.getAttribute("data-vc-screen") || "wall",
             i18n: i18n };
  }

  function closeSource() {
    if (S.source) { S.source.close(); }
    S.source = null; S.peer = null;
  }

  /* `resume`: the peer id this screen had, when its stream dropped (a network blip, a web
   * worker restarted): the server lets it keep that peer, so a call in progress goes on. */
  function open(centre, resume) {
    if (S.source) { S.source.close(); }
    S.source = null;
    if (!resume) { S.peer = null; }
    S.centre = centre;
    var src = new EventSource("/vc/events?centre=" + encodeURIComponent(centre) +
                              (resume ? "&resume=" + encodeURIComponent(resume) : ""));
    S.source = src;
    src.addEventListener("hello", function (ev) {
      var hello = JSON.parse(ev.data);
      var was = S.peer;
      S.peer = hello.peer; S.config = hello.config || {}; S.retries = 0;
      document.documentElement.setAttribute("data-vc-peer-id", S.peer);
      if (S.call && (hello.peer !== was || (hello.in_calls || []).indexOf(S.call.cid) < 0)) {
        teardown(tr("vcx_ended"));  // the call ended (or this screen left it) while away
      }
      var w = S.waiters; S.waiters = [];
      w.forEach(function (f) { f(); });
    });
    src.addEventListener("end", function () { closeSource(); });
    src.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      handle(msg);
    };
    src.onerror = function () {
      // dropped: not the browser's own reconnect (it would get a new peer) but ours, with
      // resume=, after a backoff (tick)
      src.close();
      if (S.source !== src) { return; }
      S.source = null;
      S.retries = Math.min(S.retries + 1, 5);
      S.retryAt = Date.now() + 500 * Math.pow(2, S.retries);
    };
  }

  function ready() {
    return new Promise(function (resolve, reject) {
      if (S.peer) { resolve(); return; }
      S.waiters.push(resolve);
      setTimeout(function () { reject(new Error("vcx_no_channel")); }, 8000);
    });
  }

  function tick() {
    var info = screenInfo();
    if (info) { S.i18n = info.i18n; S.kind = info.kind; }
    var back = !S.source && S.centre && Date.now() >= S.retryAt;  // reconnect, keeping the peer
    if (S.call) {  // a call keeps its stream, even when the screen drills on
      if (back) { open(S.centre, S.peer); }
      return;
    }
    if (!info) { if (S.source) { closeSource(); S.centre = null; } return; }
    if (info.centre !== S.centre) { open(info.centre); } else if (back) { open(S.centre, S.peer); }
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
  /* Leaving the page (a link, the back-forward cache): let go of the stream as wall.js does,
     else it holds one of the browser's six connections per host after the page is gone; back
     again, the tick reconnects with resume= (the same peer). */
  window.addEventListener("pagehide", function () {
    if (S.source) { S.source.close(); S.source = null; }
  });

  function post(body) {
    body.peer = S.peer;
    return fetch("/vc/signal", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { var e = new Error(j.error || String(r.status)); e.key = j.error; throw e; }
        return j;
      });
    });
  }

  /* -- messages ------------------------------------------------------------------------- */
  function handle(m) {
    var c = S.call;
    switch (m.kind) {
      case "ring": return ringing(m);
      case "cancel":
      case "end":
        if (S.ring && S.ring.cid === m.cid) { stopRing(); }
        if (c && c.cid === m.cid && m.kind === "end") { teardown(tr(c.declined ? "vcx_declined_call" : "vcx_ended")); }
        return;
      case "joined":
        if (!c || c.cid !== m.cid) { return; }
        mark("peer_joined");
        c.peers[m.peer] = m.centre;
        tileState(m.centre, "joined");
        if (c.mode === "p2p" && c.role === "caller") { offerTo(m.peer, m.centre); }
        return;
      case "declined":
        if (c && c.cid === m.cid) { tileState(m.centre, "declined"); c.declined = !c.group; }
        return;
      case "left":
        if (c && c.cid === m.cid) { dropPeer(m.peer, m.centre); }
        return;
      case "offer":
        if (c && c.cid === m.cid) { answerOffer(m.from, m.centre, m.sdp); }
        return;
      case "answer":
        if (c && c.cid === m.cid && c.pcs[m.from]) {
          c.pcs[m.from].setRemoteDescription({ type: "answer", sdp: m.sdp }).catch(failed);
        }
        return;
    }
  }

  /* -- ringing (the callee) --------------------------------------------------------------- */
  function ringing(m) {
    if (S.call || (S.ring && S.ring.cid === m.cid)) { return; }  // busy, or already ringing
    stopRing();
    var name = m.from_name || m.from;
    var box = el("div", { id: "vc-ring", className: "vc-ring", role: "alertdialog", "data-cid": m.cid });
    box.appendChild(el("div", { className: "vc-ring-title" },
      tr(m.group ? "vcx_ring_group" : "vcx_ring", { name: name })));
    var auto = S.config && S.config.auto_answer && S.kind === "wall";
    var note = el("div", { className: "vc-ring-note" }, auto ? tr("vcx_auto_answer") : "");
    box.appendChild(note);
    var btns = el("div", { className: "vc-ring-actions" });
    var yes = el("button", { className: "vc-btn vc-answer", "data-vc-act": "answer", type: "button" }, tr("vcx_answer"));
    var no = el("button", { className: "vc-btn vc-decline", "data-vc-act": "decline", type: "button" }, tr("vcx_decline"));
    yes.onclick = function () { answer(m); };
    no.onclick = function () { decline(m); };
    btns.appendChild(yes); btns.appendChild(no);
    box.appendChild(btns);
    document.body.appendChild(box);
    var ringS = (S.config && S.config.ring_s) || 30;
    S.ring = { cid: m.cid, box: box,
               timer: setTimeout(stopRing, ringS * 1000),
               auto: auto ? setTimeout(function () { answer(m); }, 1500) : null };
  }

  function stopRing() {
    if (!S.ring) { return; }
    clearTimeout(S.ring.timer); clearTimeout(S.ring.auto);
    if (S.ring.box.parentNode) { S.ring.box.parentNode.removeChild(S.ring.box); }
    S.ring = null;
  }

  function decline(m) {
    stopRing();
    post({ cid: m.cid, kind: "decline" }).catch(function () {});
  }

  function answer(m) {
    stopRing();
    if (S.call) { return; }
    var call = newCall({ cid: m.cid, mode: m.mode, group: m.group, convener: m.from,
                         names: {}, role: "callee", title: tr(m.group ? "vcx_title_group" : "vcx_title", { name: m.from_name || m.from }) });
    call.names[m.from] = m.from_name || m.from;
    getMedia().then(function () {
      showSelf();
      return post({ cid: m.cid, kind: "join" });
    }).then(function (reply) {
      call.info = reply.call || {};
      (reply.peers || []).forEach(function (p) { call.peers[p.peer] = p.centre; });
      if (call.mode === "p2p") {
        addTile(m.from);  // the caller's offer follows our join
        setState(tr("vcx_connecting"));
      } else if (call.mode === "sfu") {
        sfuJoin(call);
      }
    }).catch(function (e) {
      teardown(tr(e.key === "answered_elsewhere" ? "vcx_answered_elsewhere" : "vcx_failed", { reason: e.message }));
    });
  }

  /* -- the caller -------------------------------------------------------------------------- */
  function start(data) {
    if (!data || !data.cid || !data.mode || data.mode === "url") { return; }
    if (S.call) { teardown(); }
    var call = newCall({ cid: data.cid, mode: data.mode, group: !!data.group, convener: data.convener,
                         names: data.names || {}, role: "caller",
                         title: tr(data.group ? "vcx_title_group" : "vcx_title", { name: data.group
                           ? (data.names || {})[data.convener] || data.convener
                           : (data.names || {})[data.centres[0]] || data.centres[0] }) });
    call.centres = data.centres || [];
    call.centres.forEach(function (code) { addTile(code); tileState(code, "waiting"); });
    setState(tr(data.group ? "vcx_convening" : "vcx_calling"));
    var noAnswer = setTimeout(function () {
      if (S.call !== call) { return; }
      call.centres.forEach(function (code) {
        var t = tileOf(code);
        if (t && t.getAttribute("data-state") === "waiting") { tileState(code, "no_answer"); }
      });
    }, ((S.config && S.config.ring_s) || 30) * 1000);
    call.timers.push(noAnswer);
    ready().then(getMedia).then(function () {
      mark("media");
      showSelf();
      if (data.simulate && call.mode === "p2p") { simulate(call, call.centres[0]); }
      return post({ cid: call.cid, kind: "join" });
    }).then(function (reply) {
      mark("joined");
      call.info = reply.call || {};
      (reply.peers || []).forEach(function (p) {
        call.peers[p.peer] = p.centre; tileState(p.centre, "joined");
        if (call.mode === "p2p") { offerTo(p.peer, p.centre); }
      });
      if (call.mode === "sfu") { sfuJoin(call); }
      if (call.mode === "sip") { sipCall(call, data.url || call.info.url); }
    }).catch(failed);
  }

  /* when each step of the call was first reached, ms after it started here (bench/vc.py) */
  function mark(name) {
    var c = S.call;
    if (c && c.marks[name] === undefined) { c.marks[name] = Math.round(performance.now() - c.t0); }
  }

  function newCall(o) {
    var call = { cid: o.cid, mode: o.mode, group: o.group, convener: o.convener, names: o.names,
                 role: o.role, peers: {}, pcs: {}, timers: [], meters: {}, info: {}, janus: null,
                 started: Date.now(), t0: performance.now(), marks: {} };
    S.call = call;
    buildStage(call, o.title);
    return call;
  }

  /* -- the stage (our own overlay, outside React) ------------------------------------------ */
  function buildStage(call, title) {
    var old = document.getElementById("vc-live");
    if (old) { old.parentNode.removeChild(old); }
    var stage = el("section", { id: "vc-live", className: "vc-live", "data-cid": call.cid,
                                "data-mode": call.mode, "data-role": call.role, role: "dialog" });
    var head = el("header", { className: "vc-live-head" });
    head.appendChild(el("h2", {}, title));
    head.appendChild(el("span", { className: "vc-live-state", role: "status", "aria-live": "polite" }, ""));
    head.appendChild(el("span", { className: "vc-live-clock" }, "00:00"));
    stage.appendChild(head);
    stage.appendChild(el("div", { className: "vc-grid" }));
    var self = el("figure", { className: "vc-self" });
    var v = el("video", { playsinline: "", autoplay: "" });
    v.muted = true;
    self.appendChild(v);
    self.appendChild(el("figcaption", {}, tr("vcx_self")));
    stage.appendChild(self);
    var bar = el("footer", { className: "vc-live-bar" });
    [["mute", "vcx_mute"], ["camera", "vcx_camera_off"], ["end", "vcx_end"]].forEach(function (b) {
      var btn = el("button", { className: "vc-btn vc-act-" + b[0], "data-vc-act": b[0], type: "button" }, tr(b[1]));
      btn.onclick = function () { act(b[0], btn); };
      bar.appendChild(btn);
    });
    stage.appendChild(bar);
    document.body.appendChild(stage);
    call.timers.push(setInterval(function () {
      var s = Math.floor((Date.now() - call.started) / 1000);
      var c = stage.querySelector(".vc-live-clock");
      if (c) { c.textContent = pad(Math.floor(s / 60)) + ":" + pad(s % 60); }
    }, 1000));
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function setState(text) {
    var s = document.querySelector("#vc-live .vc-live-state");
    if (s) { s.textContent = text || ""; }
  }

  function tileOf(code) {
    return document.querySelector('#vc-live .vc-tile[data-vc-tile="' + code + '"]');
  }

  function addTile(code) {
    var t = tileOf(code);
    if (t) { return t; }
    var grid = document.querySelector("#vc-live .vc-grid");
    if (!grid) { return null; }
    t = el("figure", { className: "vc-tile", "data-vc-tile": code, "data-state": "waiting" });
    t.appendChild(el("div", { className: "vc-tile-note" }, tr("vcx_waiting")));
    var cap = el("figcaption", {}, (S.call && S.call.names[code]) || code);
    t.appendChild(cap);
    grid.appendChild(t);
    var n = grid.children.length, cols = Math.ceil(Math.sqrt(n));  // 2x2 for four, 3x3 for nine…
    grid.style.gridTemplateColumns = "repeat(" + cols + ", minmax(0, 1fr))";
    grid.style.gridTemplateRows = "repeat(" + Math.ceil(n / cols) + ", minmax(0, 1fr))";
    return t;
  }

  function tileState(code, state) {
    var t = addTile(code);
    if (!t) { return; }
    t.setAttribute("data-state", state);
    var note = t.querySelector(".vc-tile-note");
    var key = { waiting: "vcx_waiting", joined: "vcx_connecting", declined: "vcx_declined",
                no_answer: "vcx_no_answer", left: "vcx_left", live: "" }[state];
    if (note && key !== undefined) { note.textContent = key ? tr(key) : ""; }
  }

  /* A remote stream of centre `code` in its tile: the <video> carries data-vc-peer. */
  function attach(code, stream, simulated) {
    var t = addTile(code);
    if (!t) { return; }
    var v = t.querySelector("video");
    if (!v) {
      v = el("video", { playsinline: "", autoplay: "", "data-vc-peer": code });
      t.insertBefore(v, t.firstChild);
    }
    if (simulated) {
      t.setAttribute("data-vc-sim", "1");
      if (!t.querySelector(".vc-sim")) { t.querySelector("figcaption").appendChild(el("span", { className: "vc-sim" }, tr("vcx_simulated"))); }
    }
    if (v.srcObject !== stream) { v.srcObject = stream; }
    var p = v.play();
    if (p && p.catch) {
      p.catch(function () {  // no sound without a gesture (kiosk: --autoplay-policy=no-user-gesture-required)
        v.muted = true; v.play().catch(function () {});
        soundButton();
      });
    }
    tileState(code, "live");
    setState(tr("vcx_in_call"));
    meter(code, stream, t);
  }

  function soundButton() {
    var stage = document.getElementById("vc-live");
    if (!stage || stage.querySelector(".vc-unmute")) { return; }
    var b = el("button", { className: "vc-btn vc-unmute", type: "button" }, tr("vcx_sound_on"));
    b.onclick = function () {
      stage.querySelectorAll("video[data-vc-peer]").forEach(function (v) { v.muted = false; v.play().catch(function () {}); });
      b.parentNode.removeChild(b);
    };
    stage.querySelector(".vc-live-head").appendChild(b);
  }

  /* who is speaking: the level of each remote audio track (WebAudio), marked on its tile */
  function meter(code, stream, tile) {
    var call = S.call;
    if (!call || call.meters[code] || !stream.getAudioTracks().length || !window.AudioContext) { return; }
    try {
      var ctx = call.audio || (call.audio = new AudioContext());
      var an = ctx.createAnalyser();
      an.fftSize = 512;
      ctx.createMediaStreamSource(stream).connect(an);
      var buf = new Uint8Array(an.fftSize);
      call.meters[code] = setInterval(function () {
        if (ctx.state === "suspended") { ctx.resume().catch(function () {}); }
        an.getByteTimeDomainData(buf);
        var sum = 0;
        for (var i = 0; i < buf.length; i++) { var x = (buf[i] - 128) / 128; sum += x * x; }
        tile.classList.toggle("vc-speaking", Math.sqrt(sum / buf.length) > 0.02);
      }, 250);
    } catch (e) { /* no meter: the call goes on */ }
  }

  function dropPeer(peer, code) {
    var call = S.call;
    if (call.pcs[peer]) { call.pcs[peer].close(); delete call.pcs[peer]; }
    delete call.peers[peer];
    var t = tileOf(code);
    if (t) { var v = t.querySelector("video"); if (v) { v.srcObject = null; v.parentNode.removeChild(v); } }
    tileState(code, "left");
  }

  function act(what, btn) {
    var call = S.call;
    if (!call) { return; }
    if (what === "end") {
      var kind = call.role === "caller" ? "end" : "leave";
      post({ cid: call.cid, kind: kind }).catch(function () {});
      teardown();
      return;
    }
    if (!S.media) { return; }
    var tracks = what === "mute" ? S.media.getAudioTracks() : S.media.getVideoTracks();
    var on = !tracks.length || !tracks[0].enabled;
    tracks.forEach(function (t) { t.enabled = on; });
    btn.classList.toggle("vc-off", !on);
    btn.textContent = tr(what === "mute" ? (on ? "vcx_mute" : "vcx_unmute") : (on ? "vcx_camera_off" : "vcx_camera_on"));
  }

  function failed(e) {
    var key = (e && (e.key || e.message)) || "";
    if (key && key.indexOf("vcx_") !== 0 && S.i18n["vcx_" + key]) { key = "vcx_" + key; }
    setState(tr("vcx_failed", { reason: tr(key) }));
  }

  function teardown(message) {
    var call = S.call;
    S.call = null;
    if (!call) { return; }
    call.timers.forEach(function (t) { clearInterval(t); clearTimeout(t); });
    Object.keys(call.meters).forEach(function (k) { clearInterval(call.meters[k]); });
    Object.keys(call.pcs).forEach(function (k) { try { call.pcs[k].close(); } catch (e) { /* closed */ } });
    if (call.sim) { call.sim.stop(); }
    if (call.audio) { call.audio.close().catch(function () {}); }
    if (call.janus) { try { call.janus.destroy({ cleanupHandles: true }); } catch (e) { /* gone */ } }
    if (S.media) { S.media.getTracks().forEach(function (t) { t.stop(); }); S.media = null; }
    var stage = document.getElementById("vc-live");
    if (stage) { stage.parentNode.removeChild(stage); }
    if (message) { toast(message); }
    tick();
  }

  function toast(text) {
    var t = el("div", { className: "vc-toast", role: "status" }, text);
    document.body.appendChild(t);
    setTimeout(function () { if (t.parentNode) { t.parentNode.removeChild(t); } }, 5000);
  }

  /* -- media ------------------------------------------------------------------------------ */
  function getMedia() {
    S.mediaNote = "";
    var md = navigator.mediaDevices;
    if (!md || !md.getUserMedia) {  // not a secure context, or no devices API: receive only
      S.media = null; S.mediaNote = tr("vcx_receive_only");
      return Promise.resolve(null);
    }
    return md.getUserMedia({ video: { width: 640, height: 360 }, audio: true })
      .catch(function () { return md.getUserMedia({ audio: true }); })
      .then(function (s) { S.media = s; if (!s.getVideoTracks().length) { S.mediaNote = tr("vcx_no_camera"); } return s; })
      .catch(function () { S.media = null; S.mediaNote = tr("vcx_receive_only"); return null; });
  }

  function showSelf() {
    var self = document.querySelector("#vc-live .vc-self");
    if (!self) { return; }
    var v = self.querySelector("video");
    var cap = self.querySelector("figcaption");
    if (S.media && S.media.getVideoTracks().length) {
      v.srcObject = S.media; v.play().catch(function () {});
    } else {
      self.classList.add("vc-self-none");
      self.setAttribute("data-receive-only", "1");
    }
    cap.textContent = S.mediaNote || tr("vcx_self");
    if (!S.media) {
      document.querySelectorAll("#vc-live .vc-act-mute, #vc-live .vc-act-camera").forEach(function (b) { b.disabled = true; });
    }
  }

  /* -- point to point ---------------------------------------------------------------------- */
  function newPc(peer, code) {
    var call = S.call;
    var pc = new RTCPeerConnection({ iceServers: (S.config && S.config.ice_servers) || [] });
    call.pcs[peer] = pc;
    pc.ontrack = function (ev) { attach(code, ev.streams[0] || new MediaStream([ev.track])); };
    pc.onconnectionstatechange = function () {
      if (pc.connectionState === "failed") { setState(tr("vcx_failed", { reason: "ICE" })); }
    };
    return pc;
  }

  function gathered(pc) {
    return new Promise(function (resolve) {
      if (pc.iceGatheringState === "complete") { resolve(); return; }
      pc.addEventListener("icegatheringstatechange", function () {
        if (pc.iceGatheringState === "complete") { resolve(); }
      });
      setTimeout(resolve, 2000);
    });
  }

  function addLocal(pc) {
    ["audio", "video"].forEach(function (kind) {
      var tracks = S.media ? (kind === "audio" ? S.media.getAudioTracks() : S.media.getVideoTracks()) : [];
      if (tracks.length) { pc.addTrack(tracks[0], S.media); }
      else { pc.addTransceiver(kind, { direction: "recvonly" }); }
    });
  }

  function offerTo(peer, code) {
    var call = S.call;
    if (!call || call.pcs[peer]) { return; }
    var pc = newPc(peer, code);
    addLocal(pc);
    pc.createOffer().then(function (o) { return pc.setLocalDescription(o); })
      .then(function () { return gathered(pc); })
      .then(function () { return post({ cid: call.cid, kind: "offer", to: peer, sdp: pc.localDescription.sdp }); })
      .catch(failed);
  }

  function answerOffer(peer, code, sdp) {
    var call = S.call;
    if (call.pcs[peer]) { call.pcs[peer].close(); }
    var pc = newPc(peer, code);
    pc.setRemoteDescription({ type: "offer", sdp: sdp }).then(function () {
      if (S.media) { S.media.getTracks().forEach(function (t) { pc.addTrack(t, S.media); }); }
      return pc.createAnswer();
    }).then(function (a) { return pc.setLocalDescription(a); })
      .then(function () { return gathered(pc); })
      .then(function () { return post({ cid: call.cid, kind: "answer", to: peer, sdp: pc.localDescription.sdp }); })
      .catch(failed);
  }

  /* -- the simulated endpoint (demo): a test picture through a local loopback ------------- */
  function clock(now) {  // in the wall's zone (data-tz), like its own clock
    var node = document.querySelector("[data-tz]");
    var tz = node && node.getAttribute("data-tz");
    try {
      return now.toLocaleTimeString("zh-CN", { timeZone: tz || undefined, hour12: false });
    } catch (e) { return now.toTimeString().slice(0, 8); }
  }

  function simulate(call, code) {
    var name = call.names[code] || code;
    var canvas = el("canvas", { width: "640", height: "360" });
    var g = canvas.getContext("2d");
    var draw = setInterval(function () {
      var now = new Date();
      var bars = ["#c0c0c0", "#c0c000", "#00c0c0", "#00c000", "#c000c0", "#c00000", "#0000c0"];
      bars.forEach(function (c, i) { g.fillStyle = c; g.fillRect(i * 640 / 7, 0, 640 / 7 + 1, 250); });
      g.fillStyle = "#0b1a2e"; g.fillRect(0, 250, 640, 110);
      g.fillStyle = "#ffffff"; g.font = "bold 34px 'Noto Sans CJK SC', sans-serif";
      g.fillText(name, 24, 300);
      g.font = "28px monospace";
      g.fillText(clock(now), 24, 342);
      g.fillStyle = "#ffb020"; g.font = "bold 30px 'Noto Sans CJK SC', sans-serif";
      g.fillText(tr("vcx_simulated"), 520, 342);
    }, 200);
    var stream = canvas.captureStream(10);
    var a = new RTCPeerConnection(), b = new RTCPeerConnection();
    a.onicecandidate = function (e) { if (e.candidate) { b.addIceCandidate(e.candidate).catch(function () {}); } };
    b.onicecandidate = function (e) { if (e.candidate) { a.addIceCandidate(e.candidate).catch(function () {}); } };
    stream.getTracks().forEach(function (t) { a.addTrack(t, stream); });
    b.ontrack = function (ev) { attach(code, ev.streams[0] || new MediaStream([ev.track]), true); };
    a.createOffer().then(function (o) { return a.setLocalDescription(o); })
      .then(function () { return b.setRemoteDescription(a.localDescription); })
      .then(function () { return b.createAnswer(); })
      .then(function (o) { return b.setLocalDescription(o); })
      .then(function () { return a.setRemoteDescription(b.localDescription); })
      .catch(failed);
    call.sim = { stop: function () { clearInterval(draw); a.close(); b.close(); stream.getTracks().forEach(function (t) { t.stop(); }); } };
  }

  /* -- 整体联动 through Janus (VideoRoom) and SIP (SIP plugin) ------------------------------ */
  function janusSession(call, onReady) {
    var url = S.config && S.config.janus;
    if (!window.Janus || !url) { failed({ key: "vcx_no_sfu" }); return; }
    window.Janus.init({ debug: false, callback: function () {
      call.janus = new window.Janus({
        server: url, iceServers: (S.config && S.config.ice_servers) || [],
        success: function () { mark("janus_session"); onReady(call.janus); },
        error: function (e) { failed({ key: "vcx_sfu_down", message: String(e) }); },
        destroyed: function () {}
      });
    } });
  }

  function sfuJoin(call) {
    var room = call.info.room, pin = call.info.pin;
    janusSession(call, function (janus) {
      var feeds = {};
      var pub = null;
      function subscribe(p) {
        mark("publisher_seen");
        // the convener sees every centre; a convened centre sees the convener (下级看上级)
        if (feeds[p.id] || !p.display || (call.role !== "caller" && String(p.display) !== call.convener)) { return; }
        var code = String(p.display);
        var stream = new MediaStream();
        feeds[p.id] = { code: code };
        janus.attach({
          plugin: "janus.plugin.videoroom",
          success: function (h) {
            feeds[p.id].h = h;
            h.send({ message: { request: "join", room: room, pin: pin, ptype: "subscriber", streams: [{ feed: p.id }] } });
          },
          onmessage: function (msg, jsep) {
            var h = feeds[p.id] && feeds[p.id].h;
            if (jsep && h) {
              h.createAnswer({ jsep: jsep, tracks: [{ type: "data" }],
                success: function (ans) { h.send({ message: { request: "start", room: room }, jsep: ans }); },
                error: failed });
            }
          },
          onremotetrack: function (track, mid, on) {
            if (!on) { return; }
            mark("remote_track");
            stream.addTrack(track);
            attach(code, stream);
          },
          error: failed
        });
      }
      function gone(id) {
        var f = feeds[id];
        if (!f) { return; }
        if (f.h) { f.h.detach(); }
        delete feeds[id];
        var t = tileOf(f.code);
        if (t) { var v = t.querySelector("video"); if (v) { v.parentNode.removeChild(v); } }
        tileState(f.code, "left");
      }
      janus.attach({
        plugin: "janus.plugin.videoroom", opaqueId: "pingan-" + S.centre,
        success: function (h) {
          pub = h;
          h.send({ message: { request: "join", room: room, pin: pin, ptype: "publisher", display: S.centre } });
        },
        onmessage: function (msg, jsep) {
          var ev = msg.videoroom;
          if (msg.error) { failed({ key: "vcx_sfu_down", message: msg.error }); return; }
          if (ev === "joined") {
            mark("room_joined");
            setState(tr("vcx_in_call"));
            if (S.media) {
              var tracks = [];
              if (S.media.getAudioTracks().length) { tracks.push({ type: "audio", capture: S.media.getAudioTracks()[0], recv: false }); }
              if (S.media.getVideoTracks().length) { tracks.push({ type: "video", capture: S.media.getVideoTracks()[0], recv: false }); }
              pub.createOffer({ tracks: tracks,
                success: function (offer) { pub.send({ message: { request: "configure", audio: true, video: true }, jsep: offer }); },
                error: failed });
            }
            (msg.publishers || []).forEach(subscribe);
          } else if (ev === "event") {
            (msg.publishers || []).forEach(subscribe);
            if (msg.leaving) { gone(msg.leaving); }
            if (msg.unpublished && msg.unpublished !== "ok") { gone(msg.unpublished); }
          }
          if (jsep) { pub.handleRemoteJsep({ jsep: jsep }); }
        },
        error: function (e) { failed({ key: "vcx_sfu_down", message: String(e) }); }
      });
    });
  }

  function sipCall(call, uri) {
    var code = call.centres && call.centres[0];
    janusSession(call, function (janus) {
      var h = null;
      janus.attach({
        plugin: "janus.plugin.sip",
        success: function (handle) {
          h = handle;
          h.send({ message: { request: "register", type: "guest", username: "sip:pingan-" + S.centre + "@pingan.invalid" } });
        },
        onmessage: function (msg, jsep) {
          var r = msg.result || {};
          if (msg.error) { tileState(code, "declined"); failed({ key: "vcx_sip_failed", message: msg.error }); return; }
          if (r.event === "registered") {
            var tracks = [{ type: "audio", capture: S.media && S.media.getAudioTracks().length ? S.media.getAudioTracks()[0] : false, recv: true },
                          { type: "video", capture: S.media && S.media.getVideoTracks().length ? S.media.getVideoTracks()[0] : false, recv: true }];
            h.createOffer({ tracks: tracks,
              success: function (offer) { h.send({ message: { request: "call", uri: uri }, jsep: offer }); },
              error: failed });
            setState(tr("vcx_calling"));
          } else if (r.event === "accepted") {
            if (jsep) { h.handleRemoteJsep({ jsep: jsep }); }
            setState(tr("vcx_in_call"));
            tileState(code, "joined");
          } else if (r.event === "hangup") {
            setState(tr("vcx_sip_failed", { reason: (r.code || "") + " " + (r.reason || "") }));
            tileState(code, "left");
          }
        },
        onremotetrack: function (track, mid, on) {
          if (!on) { return; }
          var t = tileOf(code);
          var v = t && t.querySelector("video");
          var stream = (v && v.srcObject) || new MediaStream();
          stream.addTrack(track);
          attach(code, stream);
        },
        error: function (e) { failed({ key: "vcx_sip_failed", message: String(e) }); }
      });
    });
  }

  window.pinganVC = {
    start: start,
    state: function () {
      var c = S.call;
      return { centre: S.centre, peer: S.peer, kind: S.kind, ringing: S.ring ? S.ring.cid : null,
               call: c ? { cid: c.cid, mode: c.mode, role: c.role, marks: c.marks } : null };
    }
  };
  window.dash_clientside = Object.assign({}, window.dash_clientside);
  window.dash_clientside.pinganvc = {
    start: function (data) { if (data && data.mode && data.mode !== "url") { setTimeout(function () { start(data); }, 0); } return ""; }
  };
})();
