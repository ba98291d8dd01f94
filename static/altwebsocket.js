/*! AltWebSocket browser client, wire protocol v1 and v2 (docs/protocol.md, docs/client.md). MIT.
 *
 * `new AltWebSocket(url, emulate, protocols, options)` behaves like the browser's
 * `WebSocket` (WHATWG WebSockets standard), whichever transport it ends up using:
 *
 *   emulate === true   the emulation: EventSource downstream, fetch POSTs upstream
 *   emulate === false  the browser's native WebSocket (at a ws(s):// URL, or at the
 *                      `websocket` URL that B/info advertises for an http(s):// base B)
 *   omitted / "auto"   native if B/info advertises it and it opens within
 *                      `options.nativeTimeout`, otherwise the emulation; the app never
 *                      sees the failed first attempt.
 *
 * Emulated sockets of one browser on one server share one session (protocol v2: one event
 * stream, one uplink), held by one tab elected with Web Locks, else by a SharedWorker (this
 * same file), else by the page; `options.share = false` gives each its own stream (v1).
 *
 * One file, no build step. As a classic <script> it defines the globals `AltWebSocket` and
 * `EventSocket`; as a module, `import "./altwebsocket.js"` does the same, and
 * `altwebsocket.mjs` re-exports them as named and default exports. Loaded in a
 * SharedWorkerGlobalScope it runs the sessions' hubs.
 */
(function (root, factory) {
  "use strict";
  var api = factory(root);
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
  }
  root.AltWebSocket = api.AltWebSocket;
  root.EventSocket = api.EventSocket;
}(typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : this,
  function (root) {
  "use strict";

  var CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
  var ABNORMAL = 1006, NO_STATUS = 1005, TOO_BIG = 1009;
  var TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  var encoder = new TextEncoder();

  /** Defaults of the fourth constructor argument; change them here for every socket. */
  var DEFAULTS = {
    nativeTimeout: 3000,     // auto mode: ms the native WebSocket gets to open
    infoTimeout: 5000,       // ms to wait for B/info
    reconnectTimeout: 30000, // emulation: ms without a stream or an upstream before giving up
    closeTimeout: 10000,     // emulation: ms to wait for the close event after close()
    maxBatch: 1000,          // emulation: most messages in one POST (B/info may lower it)
    batchBytes: 1 << 20,     // emulation: a POST holds about this many bytes at most
    share: true,             // emulation: one session for the browser (true = "auto", or
                             // "tabs", "worker", "page"); false: one stream per socket (v1)
    workerURL: ""            // the SharedWorker script (this file); "": its own URL
  };

  /** POSTs S/send whose HTTP answer a hub may await at once (the stream answered them). */
  var MAX_OUTSTANDING = 2;
  /** How long a tab keeps the goodbye of another (ms) in case it leads next (TabsBackend). */
  var GONE_KEPT = 10000;

  // --- small helpers ----------------------------------------------------------------------

  function now() { return Date.now(); }

  /** Milliseconds that only go forward (the wall clock may be set back). */
  var monotonic = root.performance && typeof root.performance.now === "function"
    ? function () { return root.performance.now(); } : now;

  function sleep(ms, signal) {
    return new Promise(function (resolve) {
      var timer = setTimeout(resolve, ms);
      if (signal) {
        signal.addEventListener("abort", function () { clearTimeout(timer); resolve(); });
      }
    });
  }

  function backoff(attempt) {
    var base = Math.min(250 * Math.pow(2, attempt), 8000);
    return base / 2 + Math.random() * base / 2;
  }

  function retryAfter(response, attempt) {
    var header = response && response.headers.get("Retry-After");
    var seconds = header ? parseFloat(header) : NaN;
    return isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, 30000) : backoff(attempt);
  }

  /** WebIDL USVString: any value to a string, lone surrogates replaced by U+FFFD. */
  function usv(value) {
    var text = String(value);
    if (typeof text.toWellFormed === "function") { return text.toWellFormed(); }
    return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
      function (match, before) {
        return before === undefined ? "\uFFFD" : before + "\uFFFD";
      });
  }

  function isBinary(data) {
    return data instanceof ArrayBuffer || ArrayBuffer.isView(data) ||
      (typeof Blob !== "undefined" && data instanceof Blob);
  }

  /** The ArrayBuffer of a received message's bytes: its own when they fill it (a message
   *  decoded here), else a copy. */
  function ownBuffer(bytes) {
    return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? bytes.buffer : bytesOf(bytes).buffer;
  }

  function bytesOf(data) {
    if (data instanceof ArrayBuffer) { return new Uint8Array(data.slice(0)); }
    return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  }

  function toBase64(bytes) {
    var parts = [];
    for (var i = 0; i < bytes.length; i += 0x8000) {
      parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)));
    }
    return btoa(parts.join(""));
  }

  function fromBase64(text) {
    var raw = atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  function baseURL() {
    if (root.document && root.document.baseURI) { return root.document.baseURI; }
    if (root.location) { return root.location.href; }
    return undefined;
  }

  /** The WebSocket constructor's URL steps: parse, map http(s) to ws(s), refuse the rest. */
  function parseURL(url) {
    var parsed;
    try {
      parsed = new URL(String(url), baseURL());
    } catch (e) {
      throw new DOMException("The URL '" + url + "' is invalid.", "SyntaxError");
    }
    if (parsed.protocol === "http:") { parsed.protocol = "ws:"; }
    else if (parsed.protocol === "https:") { parsed.protocol = "wss:"; }
    if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
      throw new DOMException("The URL's scheme must be either 'http', 'https', 'ws', or " +
        "'wss'. '" + parsed.protocol.slice(0, -1) + "' is not allowed.", "SyntaxError");
    }
    if (parsed.href.indexOf("#") >= 0) {
      throw new DOMException("The URL contains a fragment identifier ('" + parsed.hash +
        "'). Fragment identifiers are not allowed in WebSocket URLs.", "SyntaxError");
    }
    return parsed;
  }

  /** The app base URL B (http(s), no trailing slash) for a ws(s) URL. */
  function httpBase(parsed) {
    var base = new URL(parsed.href);
    base.protocol = parsed.protocol === "wss:" ? "https:" : "http:";
    base.search = "";
    return base.href.replace(/\/+$/, "");
  }

  function parseProtocols(protocols) {
    var list;
    if (protocols === undefined) { list = []; }
    else if (protocols !== null && typeof protocols === "object" &&
             typeof protocols[Symbol.iterator] === "function") {
      list = Array.from(protocols, String);
    } else { list = [String(protocols)]; }
    var seen = {};
    list.forEach(function (name) {
      if (!TOKEN.test(name) || Object.prototype.hasOwnProperty.call(seen, name)) {
        throw new DOMException("The subprotocol '" + name + "' is invalid or duplicated.",
          "SyntaxError");
      }
      seen[name] = true;
    });
    return list;
  }

  function parseMode(emulate) {
    if (emulate === true || emulate === "emulation") { return "emulation"; }
    if (emulate === false || emulate === "native") { return "native"; }
    if (emulate === undefined || emulate === null || emulate === "auto") { return "auto"; }
    return null; // not a mode: the caller used the native (url, protocols) signature
  }

  /** WebIDL [Clamp] unsigned short. */
  function clampCode(value) {
    var n = Number(value);
    if (isNaN(n)) { return 0; }
    n = Math.min(Math.max(n, 0), 65535);
    var floor = Math.floor(n), diff = n - floor;
    if (diff > 0.5 || (diff === 0.5 && floor % 2 === 1)) { return floor + 1; }
    return floor;
  }

  function closeEvent(code, reason, wasClean) {
    if (typeof CloseEvent === "function") {
      return new CloseEvent("close", { code: code, reason: reason, wasClean: wasClean });
    }
    var event = new Event("close");
    Object.defineProperties(event, {
      code: { value: code }, reason: { value: reason }, wasClean: { value: wasClean }
    });
    return event;
  }

  function postJSON(url, body, signal) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "text/plain;charset=UTF-8" }, // a "simple" request: no preflight
      body: JSON.stringify(body),
      cache: "no-store",
      signal: signal
    });
  }

  /** Whether the server's choice may stand, as a browser checks a handshake (RFC 6455
   *  4.1): one of the protocols offered, or "" when none was offered. */
  function acceptedProtocol(offered, chosen) {
    return offered.length ? offered.indexOf(chosen) >= 0 : chosen === "";
  }

  function readJSON(response) {
    return response.text().then(function (text) {
      try { return JSON.parse(text); } catch (e) { return {}; }
    });
  }

  // --- transport: the browser's native WebSocket ------------------------------------------

  /** The browser's own WebSocket, as it was when this file loaded: a page may then replace
   *  it with AltWebSocket (`window.WebSocket = AltWebSocket`) without the native transport
   *  constructing an AltWebSocket again. */
  var NativeWebSocket = root.WebSocket;

  /** The native transport: a browser WebSocket whose events are handed to the owner. */
  function NativeTransport(owner, url, protocols) {
    this.name = "native";
    this.owner = owner;
    this.ws = new NativeWebSocket(url, protocols);
    this.ws.binaryType = "arraybuffer";
    this.live = false; // set once the owner adopted it
    this.failed = false; // close() came while connecting: it ends in 1006 (see attach)
  }

  NativeTransport.prototype.attach = function (callbacks) {
    var ws = this.ws;
    ws.onopen = function () { callbacks.open(ws.protocol, ws.extensions); };
    ws.onmessage = function (e) { callbacks.message(e.data, e.origin); };
    ws.onerror = function () { callbacks.error(); };
    var self = this;
    ws.onclose = function (e) {
      // close() while connecting fails the connection: 1006, not clean (the standard).
      // Firefox, when the handshake was done but not yet announced, says 1005 and clean.
      if (self.failed) { return callbacks.close(ABNORMAL, "", false); }
      callbacks.close(e.code, e.reason, e.wasClean);
    };
  };

  NativeTransport.prototype.detach = function () {
    var ws = this.ws;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    if (ws.readyState === CONNECTING || ws.readyState === OPEN) {
      try { ws.close(); } catch (e) { /* already closing */ }
    }
  };

  NativeTransport.prototype.send = function (data) { this.ws.send(data); };

  NativeTransport.prototype.close = function (code, reason) {
    if (this.ws.readyState === CONNECTING) { this.failed = true; }
    if (code === undefined) { this.ws.close(); } else { this.ws.close(code, reason); }
  };

  // --- transport: the emulation (EventSource + POST) -------------------------------------

  /**
   * The emulated transport (the paper's EventSocket): POST B/new, then an EventSource on
   * B/?id&token for the events, and POST B/send (with seq numbers) for the messages.
   */
  function Emulation(owner, base, protocols, options, info) {
    this.name = "emulation";
    this.owner = owner;
    this.base = base;
    this.protocols = protocols;
    this.options = options;
    this.maxBatch = Math.max(1, Math.min(options.maxBatch, (info && info.max_batch) || Infinity));
    this.id = null;
    this.token = null;
    this.protocol = "";
    this.extensions = "";
    this.nextSeq = 1;
    this.queue = [];          // {seq, size, data | bytes | blob} not yet acknowledged
    this.sending = false;
    this.lastEventId = 0;
    this.source = null;
    this.opened = false;
    this.done = false;
    this.closeRequest = null; // {code, reason} once close() was called
    this.closeSent = false;
    this.downSince = 0;
    this.failures = 0;
    this.timers = [];
    this.abortController = new AbortController();
    var self = this;
    this.onPageHide = function () { self.release(); };
  }

  Emulation.prototype.url = function (name) { return this.base + "/" + name; };

  Emulation.prototype.later = function (fn, ms) {
    var self = this;
    var timer = setTimeout(function () {
      self.timers.splice(self.timers.indexOf(timer), 1);
      if (!self.done) { fn(); }
    }, ms);
    this.timers.push(timer);
    return timer;
  };

  Emulation.prototype.attach = function (callbacks) {
    this.callbacks = callbacks;
    this.start();
  };

  Emulation.prototype.start = function () {
    var self = this, signal = this.abortController.signal, started = now(), attempt = 0;
    var body = this.protocols.length ? { protocols: this.protocols } : {};
    function tryNew() {
      postJSON(self.url("new"), body, signal).then(function (response) {
        if (self.done) { return; }
        if ((response.status === 429 || response.status === 503) &&
            now() - started < self.options.reconnectTimeout) {
          self.later(tryNew, retryAfter(response, attempt++));
          return;
        }
        if (!response.ok) { return self.fail(); }
        return response.json().then(function (answer) {
          if (self.done) { return; }
          self.id = answer.id;
          self.token = answer.token;
          self.protocol = answer.protocol || "";
          self.extensions = answer.extensions || "";
          if (!acceptedProtocol(self.protocols, self.protocol)) {
            // Like native: none of those offered, or one never offered → fail.
            self.release();
            return self.fail();
          }
          if (root.addEventListener) { root.addEventListener("pagehide", self.onPageHide); }
          self.openStream();
        });
      }).catch(function () { if (!self.done) { self.fail(); } });
    }
    tryNew();
  };

  Emulation.prototype.streamURL = function (withLast) {
    var url = this.url("") + "?id=" + encodeURIComponent(this.id) +
      "&token=" + encodeURIComponent(this.token);
    if (withLast && this.lastEventId) { url += "&lastEventId=" + this.lastEventId; }
    return url;
  };

  Emulation.prototype.openStream = function () {
    var self = this;
    var source = new EventSource(this.streamURL(true));
    this.source = source;
    source.onopen = function () {
      if (source !== self.source || self.done) { return; }
      self.failures = 0;
      self.up();
      if (!self.opened) {
        self.opened = true;
        self.callbacks.open(self.protocol, self.extensions);
        self.flush();
      }
    };
    source.onmessage = function (e) { if (source === self.source) { self.event(e, "text"); } };
    source.addEventListener("binary", function (e) {
      if (source === self.source) { self.event(e, "binary"); }
    });
    source.addEventListener("close", function (e) {
      if (source === self.source) { self.event(e, "close"); }
    });
    source.onerror = function () {
      if (source !== self.source || self.done) { return; }
      self.down();
      if (source.readyState === 2 /* EventSource.CLOSED */) {
        self.source = null;
        self.recover();
      } // else CONNECTING: the browser resumes it with Last-Event-ID by itself
    };
  };

  /** The stream or the uplink is down: start the give-up clock. */
  Emulation.prototype.down = function () {
    var self = this;
    if (this.downSince) { return; }
    this.downSince = now();
    this.downTimer = this.later(function () { self.fail(); }, this.options.reconnectTimeout);
  };

  Emulation.prototype.up = function () {
    this.downSince = 0;
    if (this.downTimer) { clearTimeout(this.downTimer); this.downTimer = null; }
  };

  /** The EventSource went CLOSED without a close event (a 503, 429, 508… or a 204). */
  Emulation.prototype.recover = function () {
    var self = this, signal = this.abortController.signal;
    var delay = backoff(this.failures++);
    this.later(function () {
      // Learn the status EventSource hides, then re-create the EventSource if it is worth it.
      fetch(self.streamURL(true), { cache: "no-store", signal: signal }).then(function (response) {
        if (self.done) { return; }
        if (response.body) { response.body.cancel().catch(function () {}); }
        var status = response.status;
        if (status === 200) { return self.openStream(); }
        if (status === 204 || status === 400 || status === 403 || status === 404) {
          return self.fail(); // the connection is over for the server
        }
        self.later(function () { self.recover(); }, retryAfter(response, 0));
      }).catch(function () { if (!self.done) { self.recover(); } });
    }, delay);
  };

  Emulation.prototype.event = function (e, kind) {
    if (this.done) { return; }
    var id = parseInt(e.lastEventId, 10);
    if (id > 0) {
      if (id <= this.lastEventId) { return; } // a duplicate: already delivered
      this.lastEventId = id;
    }
    var payload;
    try {
      payload = JSON.parse(e.data);
    } catch (err) {
      return this.fail();
    }
    if (kind === "close") {
      var code = payload && typeof payload.code === "number" ? payload.code : NO_STATUS;
      return this.finish(code, (payload && payload.reason) || "", code !== ABNORMAL);
    }
    if (kind === "binary") {
      try { payload = fromBase64(payload); } catch (err) { return this.fail(); }
    } else if (typeof payload !== "string") {
      return this.fail();
    }
    this.callbacks.message(payload, null);
  };

  /** Queue a message: `data` (text) or `bytes` (Uint8Array) or `blob`; `size` in bytes. */
  Emulation.prototype.send = function (item) {
    if (this.done || this.closeRequest) { return; }
    item.seq = this.nextSeq++;
    this.queue.push(item);
    this.flush();
  };

  Emulation.prototype.wire = function (item) {
    var message = { seq: item.seq };
    if (item.data !== undefined) { message.data = item.data; } else { message.binary = item.b64; }
    return message;
  };

  /** Post the queued messages, in order, one POST at a time; what queues meanwhile is batched. */
  Emulation.prototype.flush = function () {
    if (this.sending || this.done || !this.opened) { return; }
    if (!this.queue.length) {
      if (this.closeRequest && !this.closeSent) { this.sendClose(); }
      return;
    }
    this.sending = true;
    var self = this, signal = this.abortController.signal, attempt = 0;

    function ready(item) {
      if (item.b64 !== undefined || item.data !== undefined) { return Promise.resolve(); }
      if (item.bytes) { item.b64 = toBase64(item.bytes); item.bytes = null; return Promise.resolve(); }
      return item.blob.arrayBuffer().then(function (buffer) {
        item.b64 = toBase64(new Uint8Array(buffer));
        item.blob = null;
      });
    }

    function batch() {
      var items = [], bytes = 0, i = 0;
      function next() {
        if (i >= self.queue.length || items.length >= self.maxBatch) { return Promise.resolve(items); }
        var item = self.queue[i];
        if (items.length && bytes + item.size > self.options.batchBytes) { return Promise.resolve(items); }
        return ready(item).then(function () {
          items.push(item);
          bytes += item.size;
          i++;
          return next();
        });
      }
      return next();
    }

    function round() {
      if (self.done) { self.sending = false; return; }
      if (!self.queue.length) {
        self.sending = false;
        return self.flush();
      }
      batch().then(function (items) {
        var body = { id: self.id, token: self.token };
        if (items.length === 1) {
          Object.assign(body, self.wire(items[0]));
        } else {
          body.messages = items.map(function (item) { return self.wire(item); });
        }
        var posted = postJSON(self.url("send"), body, signal);
        self.handedToNetwork(items);
        return posted.then(function (response) {
          return readJSON(response).then(function (json) { answer(response, json); });
        }, function () {
          // A network failure: resend the same seqs after a pause (the server de-duplicates).
          if (self.done) { return; }
          self.down();
          self.later(round, backoff(attempt++));
        });
      }).catch(function () { if (!self.done) { self.later(round, backoff(attempt++)); } });
    }

    function answer(response, body) {
      if (self.done) { return; }
      var status = response.status;
      if (response.ok && typeof body.ack === "number") {
        attempt = 0;
        if (self.source && self.source.readyState === 1) { self.up(); }
        self.acknowledge(body.ack);
        return round();
      }
      if (status === 409 && typeof body.expected === "number") {
        self.acknowledge(body.expected - 1);
        if (self.queue.length && self.queue[0].seq !== body.expected) { return self.fail(); }
        return round();
      }
      if (status === 410) {
        // Closed on the server: its close event is on the stream; what is queued is dropped.
        self.queue = [];
        self.sending = false;
        return;
      }
      if (status === 413) { self.release(); return self.fail(TOO_BIG); }
      if (status === 429 || status >= 500) {
        self.down();
        return self.later(round, retryAfter(response, attempt++));
      }
      return self.fail();
    }

    round();
  };

  /** bufferedAmount counts what is not yet handed to the network, as native does: these
   *  items are in a request now (they stay queued, for a retry, until acknowledged). */
  Emulation.prototype.handedToNetwork = function (items) {
    var bytes = 0;
    items.forEach(function (item) { if (!item.sent) { item.sent = true; bytes += item.size; } });
    if (bytes) { this.callbacks.acked(bytes); }
  };

  Emulation.prototype.acknowledge = function (ack) {
    var bytes = 0;
    while (this.queue.length && this.queue[0].seq <= ack) {
      var item = this.queue.shift();
      if (!item.sent) { bytes += item.size; }
    }
    if (bytes) { this.callbacks.acked(bytes); }
  };

  /** close(): after the queued messages went out, POST B/close; the close event ends it. */
  Emulation.prototype.close = function (code, reason) {
    if (this.done || this.closeRequest) { return; }
    this.closeRequest = { code: code, reason: reason };
    var self = this;
    this.later(function () { self.fail(); }, this.options.closeTimeout);
    this.flush();
  };

  Emulation.prototype.sendClose = function () {
    var self = this, attempt = 0, signal = this.abortController.signal;
    this.closeSent = true;
    var body = { id: this.id, token: this.token };
    if (this.closeRequest.code !== undefined) {
      body.code = this.closeRequest.code;
      body.reason = this.closeRequest.reason;
    }
    function attemptClose() {
      postJSON(self.url("close"), body, signal).then(function (response) {
        if (!self.done && (response.status === 429 || response.status >= 500)) {
          self.later(attemptClose, retryAfter(response, attempt++));
        } else if (!self.done && !response.ok && response.status !== 410) {
          self.fail();
        }
      }, function () { if (!self.done) { self.later(attemptClose, backoff(attempt++)); } });
    }
    attemptClose();
  };

  /** Tell the server we are gone, without waiting (page hidden, failed connection). */
  Emulation.prototype.release = function () {
    if (!this.id || this.releaseSent) { return; }
    this.releaseSent = true;
    var body = JSON.stringify({ id: this.id, token: this.token });
    try {
      if (root.navigator && root.navigator.sendBeacon &&
          root.navigator.sendBeacon(this.url("close"),
            new Blob([body], { type: "text/plain;charset=UTF-8" }))) {
        return;
      }
      fetch(this.url("close"), { method: "POST", body: body, keepalive: true,
        headers: { "Content-Type": "text/plain;charset=UTF-8" } }).catch(function () {});
    } catch (e) { /* best effort */ }
  };

  Emulation.prototype.teardown = function () {
    this.done = true;
    this.timers.forEach(clearTimeout);
    this.timers = [];
    if (this.source) { this.source.close(); this.source = null; }
    this.abortController.abort();
    if (root.removeEventListener) { root.removeEventListener("pagehide", this.onPageHide); }
  };

  Emulation.prototype.finish = function (code, reason, wasClean) {
    if (this.done) { return; }
    this.teardown();
    this.callbacks.close(code, reason, wasClean);
  };

  Emulation.prototype.fail = function (code) {
    if (this.done) { return; }
    this.teardown();
    this.callbacks.error();
    this.callbacks.close(code || ABNORMAL, "", false);
  };

  /** Stop at once, silently (close() while CONNECTING); the server is told best effort. */
  Emulation.prototype.detach = function () {
    if (this.done) { return; }
    this.teardown();
    this.release();
  };

  // --- version 2: one session per browser (docs/protocol.md, "Version 2") -------------------
  //
  // Every shared socket of a page talks to a Link (one per session base S and mode). The
  // Link talks to the Hub that holds the session: in a SharedWorker (this same file, loaded
  // as a worker), in the tab that holds a Web Lock (relayed over a BroadcastChannel), or in
  // the page itself. The hub carries the ops of every socket in POSTs to S/send and reads the
  // session's one stream. The sockets keep their own state (unacknowledged messages and their
  // seqs, the last event delivered), so a new hub is handed everything again and no message
  // is lost or delivered twice.

  var SCRIPT_URL = (function () {
    try {
      var script = root.document && root.document.currentScript;
      return script && script.src ? script.src : "";
    } catch (e) { return ""; }
  }());
  var LOCKS = root.navigator && root.navigator.locks &&
    typeof root.navigator.locks.request === "function" ? root.navigator.locks : null;

  function noop() {}

  function soon(fn) { Promise.resolve().then(fn); }

  function randomId(length) {
    var alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    var bytes = new Uint8Array(length), out = "";
    root.crypto.getRandomValues(bytes);
    for (var i = 0; i < length; i++) { out += alphabet.charAt(bytes[i] % 62); }
    return out;
  }

  var TAB = randomId(12); // this page among the peers of a session (a ref prefix, a lock name)
  var REFS = 0;

  function tabLockName(id) { return "altwebsocket tab " + id; }

  /** The session base S and the app name for an app base B, or null if B has no app name. */
  function sessionTarget(base) {
    var url = new URL(base), path = url.pathname, cut = path.lastIndexOf("/");
    var app = path.slice(cut + 1);
    try { app = decodeURIComponent(app); } catch (e) { return null; }
    if (!app || app.charAt(0) === "_") { return null; }
    url.pathname = path.slice(0, cut) + "/_session";
    url.search = "";
    url.hash = "";
    return { base: url.href, app: app };
  }

  /**
   * The `share` option as a mode: "tabs", "worker", "page", or null (version 1). By default
   * the tab with the Web Lock holds the session (its own sockets reach it with no hop; a
   * hop to a SharedWorker and back cost an echo 0.2-0.3 ms in Chromium, docs/client.md),
   * else a SharedWorker, else the page.
   */
  function shareMode(options) {
    var want = options.share;
    if (want === false || want === "off" || want === "none") { return null; }
    var worker = typeof root.SharedWorker === "function" && !!(options.workerURL || SCRIPT_URL);
    var tabs = !!LOCKS && typeof root.BroadcastChannel === "function";
    if (want === "page") { return "page"; }
    if (want === "tabs") { return tabs ? "tabs" : "page"; }
    if (want === "worker") { return worker ? "worker" : tabs ? "tabs" : "page"; }
    return tabs ? "tabs" : worker ? "worker" : "page";
  }

  function supportsSessions(info) {
    return !!info && Array.isArray(info.versions) && info.versions.indexOf(2) >= 0;
  }

  /** B/info, shared by the sockets of a page for a while (one request for a dozen sockets). */
  var INFO = {};
  function fetchInfo(base, timeout) {
    var cached = INFO[base];
    if (cached && now() - cached.at < 30000) { return cached.promise; }
    var control = new AbortController();
    var timer = setTimeout(function () { control.abort(); }, timeout);
    var entry = { at: now() };
    entry.promise = fetch(base + "/info", { cache: "no-store", signal: control.signal })
      .then(function (r) { return r.ok ? r.json() : null; })
      .catch(function () { return null; })
      .then(function (info) {
        clearTimeout(timer);
        if (!info && INFO[base] === entry) { delete INFO[base]; }
        return info;
      });
    INFO[base] = entry;
    return entry.promise;
  }

  function beacon(url, body) {
    var text = JSON.stringify(body);
    try {
      if (root.navigator && root.navigator.sendBeacon &&
          root.navigator.sendBeacon(url, new Blob([text], { type: "text/plain;charset=UTF-8" }))) {
        return;
      }
    } catch (e) { /* fall back to fetch */ }
    try {
      fetch(url, { method: "POST", body: text, keepalive: true,
        headers: { "Content-Type": "text/plain;charset=UTF-8" } }).catch(noop);
    } catch (e) { /* best effort */ }
  }

  /** The page holds a Web Lock named after itself until it dies: hubs wait on it. */
  var tabLocked = null;
  function whenTabLocked(fn) {
    if (!LOCKS) { return soon(fn); }
    if (!tabLocked) {
      tabLocked = new Promise(function (resolve) {
        LOCKS.request(tabLockName(TAB), function () {
          resolve();
          return new Promise(noop); // held until the page goes away
        }).catch(function () { resolve(); });
      });
    }
    tabLocked.then(fn);
  }

  // The Server-Sent Events parser of the HTML standard, for a stream read with fetch().
  function SSEParser(onEvent, onRetry) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.rest = "";
    this.skipLF = false;
    this.data = null;
    this.type = "";
    this.lastId = "";
  }

  SSEParser.prototype.feed = function (text) {
    if (this.skipLF && text) {
      if (text.charAt(0) === "\n") { text = text.slice(1); }
      this.skipLF = false;
    }
    var buffer = this.rest + text, start = 0, lines = /\r\n|\r|\n/g, match;
    while ((match = lines.exec(buffer))) {
      this.line(buffer.slice(start, match.index));
      start = lines.lastIndex;
      if (match[0] === "\r" && start === buffer.length) { this.skipLF = true; } // maybe CR|LF
    }
    this.rest = buffer.slice(start);
  };

  SSEParser.prototype.line = function (line) {
    if (line === "") {
      if (this.data !== null) {
        var event = { id: this.lastId, type: this.type || "message", data: this.data };
        this.data = null;
        this.type = "";
        this.onEvent(event);
      }
      this.type = "";
      return;
    }
    if (line.charAt(0) === ":") { return; } // a comment: the heartbeat
    var colon = line.indexOf(":"), field = line, value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charAt(0) === " ") { value = value.slice(1); }
    }
    if (field === "data") { this.data = this.data === null ? value : this.data + "\n" + value; }
    else if (field === "event") { this.type = value; }
    else if (field === "id") { if (value.indexOf("\u0000") < 0) { this.lastId = value; } }
    else if (field === "retry") { if (/^\d+$/.test(value)) { this.onRetry(parseInt(value, 10)); } }
  };

  // --- the hub: holds one session (S/new, the stream, S/send, S/close) -------------------------

  /** What the pages keep of the session, for pagehide and for the next hub. */
  function sessionFields(s) {
    return { session: s ? s.id : null, secret: s ? s.secret : null,
      heartbeat: s ? s.heartbeat : null, maxBatch: s ? s.maxBatch : null };
  }

  /**
   * Hub(S, env): the session of every shared socket of a browser for the session base S.
   * Peers (pages) say `hello` with an outlet (how to reach them: `post(msg)`, and `all` when
   * one post reaches every peer, as a BroadcastChannel does); then they send ops tagged with
   * the hub's epoch. `env.watch(peerId)` tells the hub when a peer dies (a Web Lock).
   */
  function Hub(base, env) {
    this.base = base;
    this.env = env || {};
    this.epoch = randomId(12);
    this.peers = {};           // id -> {id, outlet}
    this.refs = {};            // ref -> the connection's state, below
    this.order = [];           // refs, for round-robin batching
    this.turn = 0;
    this.session = null;       // {id, secret, maxBatch, heartbeat}
    this.creating = false;
    this.cursor = 0;           // the last session event id read
    this.retryDelay = 1000;    // the stream's `retry:`
    this.failures = 0;
    this.stream = null;        // the AbortController of the stream request
    this.connected = false;    // the stream answered 200 and is being read
    this.live = false;         // the stream was up once in this session: ops may go
    this.isDown = false;
    this.sending = false;
    // the number of the last POST S/send; from a random start, so the answer of another
    // hub's POST (a tab that held this session before) never passes for one of ours
    this.rid = Math.floor(Math.random() * 1e12);
    this.pending = null;       // {rid, ops} of the POST not answered yet (by either copy)
    this.outstanding = 0;      // POSTs whose HTTP answer has not come back
    this.sendFailures = 0;
    this.small = false;        // the last POST was too big: one message at a time
    this.holding = null;       // handoff: waiting for the peers' positions
    this.former = {};          // handoff: peer id -> refs, as the last hub announced them
    this.limits = { maxBatch: DEFAULTS.maxBatch, batchBytes: DEFAULTS.batchBytes };
    this.timers = {};
    this.stopped = false;
  }

  Hub.prototype.timer = function (name, fn, ms) {
    var self = this;
    clearTimeout(this.timers[name]);
    this.timers[name] = setTimeout(function () {
      delete self.timers[name];
      if (!self.stopped) { fn(); }
    }, ms);
  };

  Hub.prototype.untimer = function (name) {
    if (this.timers[name] === undefined) { return; } // (each answer clears "send": cheaply)
    clearTimeout(this.timers[name]);
    delete this.timers[name];
  };

  Hub.prototype.post = function (peerId, msg) {
    var peer = this.peers[peerId];
    if (!peer || this.stopped) { return; }
    msg.to = peerId;
    msg.s = this.base;
    peer.outlet.post(msg);
  };

  Hub.prototype.outlets = function () {
    var list = [];
    for (var id in this.peers) {
      if (list.indexOf(this.peers[id].outlet) < 0) { list.push(this.peers[id].outlet); }
    }
    return list;
  };

  /** One message to every peer. */
  Hub.prototype.all = function (msg) {
    if (this.stopped) { return; }
    var base = this.base;
    this.outlets().forEach(function (outlet) {
      outlet.post(Object.assign({}, msg, { to: "*", s: base }));
    });
  };

  Hub.prototype.liveCount = function () {
    var n = 0;
    for (var ref in this.refs) { if (!this.refs[ref].orphan) { n++; } }
    return n;
  };

  /** The peers and their live refs changed: tell everyone (a new leader needs it), soon. */
  Hub.prototype.changed = function () {
    var self = this;
    if (!this.changeQueued) {
      this.changeQueued = true;
      soon(function () {
        self.changeQueued = false;
        var peers = {};
        for (var id in self.peers) { peers[id] = []; }
        for (var ref in self.refs) {
          var r = self.refs[ref];
          if (!r.orphan && peers[r.peer]) { peers[r.peer].push(ref); }
        }
        self.all({ t: "peers", peers: peers });
      });
    }
    // The last socket of the browser went away: close the session (a moment later, so that
    // a page closing one socket and opening another keeps it).
    if (this.liveCount() === 0 && (this.session || this.creating)) {
      this.timer("idle", function () {
        if (!self.holding && !self.creating && self.session && self.liveCount() === 0) {
          self.closeSession();
        }
      }, 1000);
    } else {
      this.untimer("idle");
    }
  };

  Hub.prototype.hello = function (peerId, outlet, info) {
    if (this.stopped) { return; }
    info = info || {};
    var peer = this.peers[peerId];
    if (!peer) {
      peer = this.peers[peerId] = { id: peerId };
      if (this.env.watch) { this.env.watch(peerId); }
    }
    peer.outlet = outlet;
    if (info.limits) {
      this.limits.maxBatch = Math.max(1, Math.min(this.limits.maxBatch, info.limits.maxBatch || Infinity));
      this.limits.batchBytes = Math.max(1, Math.min(this.limits.batchBytes, info.limits.batchBytes || Infinity));
    }
    if (this.holding) {
      if (!this.session && info.session && info.secret) {
        this.session = { id: info.session, secret: info.secret, heartbeat: info.heartbeat,
          maxBatch: info.maxBatch };
      }
      this.heard(peerId, info.position);
    } else if (typeof info.position === "number" && this.session && info.position < this.cursor &&
               info.session === this.session.id) {
      // A page that was slow to answer the handoff: read again what it may have missed.
      this.rewind(info.position);
    }
    var s = this.session;
    this.post(peerId, Object.assign({ t: "welcome", epoch: this.epoch,
      upTo: this.holding ? null : this.cursor, down: this.isDown }, sessionFields(s)));
    this.changed();
  };

  /** Handoff: wait (bounded) for the known peers to say where they are in the stream. */
  Hub.prototype.hold = function (expected, former, session, ms) {
    var self = this;
    this.holding = { waiting: {}, positions: [] };
    this.former = former || {};
    if (session) { this.session = session; }
    expected.forEach(function (id) {
      self.holding.waiting[id] = true;
      if (self.env.watch) { self.env.watch(id); }
    });
    this.timer("hold", function () { self.unhold(); }, ms);
  };

  Hub.prototype.heard = function (peerId, position) {
    var h = this.holding;
    if (!h) { return; }
    if (typeof position === "number") { h.positions.push(position); }
    delete h.waiting[peerId];
    var self = this;
    if (!Object.keys(h.waiting).length) { soon(function () { self.unhold(); }); }
  };

  Hub.prototype.unhold = function () {
    var h = this.holding;
    if (!h || this.stopped) { return; }
    this.holding = null;
    this.untimer("hold");
    // Resume after the lowest position any page reported: the pages drop what they have.
    // (A page that did not answer in time is not taken for dead: only its Web Lock says so.)
    this.cursor = h.positions.length ? Math.min.apply(Math, h.positions) : 0;
    if (this.session) {
      this.all(Object.assign({ t: "session" }, sessionFields(this.session)));
      this.connect();
    } else if (this.liveCount()) {
      this.ensureSession();
    }
    this.changed();
    this.kick();
  };

  /** A peer said bye or died: close its connections on the server. */
  Hub.prototype.gone = function (peerId) {
    if (this.stopped) { return; }
    var self = this;
    delete this.peers[peerId];
    for (var ref in this.refs) {
      if (this.refs[ref].peer === peerId) { this.orphan(this.refs[ref]); }
    }
    (this.former[peerId] || []).forEach(function (ref) {
      if (!self.refs[ref]) { self.add({ ref: ref, peer: peerId, opened: true, orphan: true }); }
    });
    delete this.former[peerId];
    if (this.holding) { this.heard(peerId, null); }
    this.changed();
    this.kick();
  };

  Hub.prototype.add = function (fields) {
    var r = Object.assign({ ref: "", peer: "", app: "", protocols: [], opened: false,
      posted: false, msgs: [], maxSeq: 0, acked: 0, close: null, closeDone: false,
      retryAt: 0, attempts: 0, orphan: false }, fields);
    if (r.orphan) { r.posted = true; r.close = r.close || {}; }
    this.refs[r.ref] = r;
    this.order.push(r.ref);
    return r;
  };

  Hub.prototype.remove = function (ref) {
    if (!this.refs[ref]) { return; }
    delete this.refs[ref];
    this.order.splice(this.order.indexOf(ref), 1);
    this.changed();
  };

  /** Nobody wants this connection anymore: close it on the server if it may exist there. */
  Hub.prototype.orphan = function (r) {
    if (!r.posted) { return this.remove(r.ref); }
    r.orphan = true;
    r.msgs = [];
    if (!r.close) { r.close = {}; }
    if (r.closeDone) { this.remove(r.ref); }
  };

  /** An op from a peer: open, send, close or drop of one of its sockets. */
  Hub.prototype.op = function (peerId, msg) {
    if (this.stopped || !msg || msg.epoch !== this.epoch || !this.peers[peerId]) { return; }
    var r = this.refs[msg.ref];
    if (msg.t === "open") {
      if (r) { return; }
      if (msg.opened && (!this.session || msg.sid !== this.session.id)) {
        // It was open in a session this hub does not hold (it ended meanwhile).
        return this.post(peerId, { t: "failed", ref: msg.ref, code: ABNORMAL });
      }
      this.add({ ref: msg.ref, peer: peerId, app: msg.app, protocols: msg.protocols || [],
        opened: !!msg.opened, posted: !!msg.opened, maxSeq: msg.acked || 0, acked: msg.acked || 0 });
      this.changed();
      this.ensureSession();
    } else if (msg.t === "drop") {
      if (r && r.peer === peerId) { this.orphan(r); }
      else if (!r && this.session) { this.add({ ref: msg.ref, peer: peerId, orphan: true }); }
    } else if (!r || r.peer !== peerId || r.orphan) {
      return;
    } else if (msg.t === "send") {
      (msg.messages || []).forEach(function (m) {
        if (m.seq > r.maxSeq) { r.msgs.push(m); r.maxSeq = m.seq; }
      });
    } else if (msg.t === "close") {
      if (!r.close) { r.close = { code: msg.code, reason: msg.reason }; }
    }
    this.kick();
  };

  Hub.prototype.down = function () {
    if (!this.isDown) { this.isDown = true; this.all({ t: "down" }); }
  };

  Hub.prototype.up = function () {
    if (this.isDown) { this.isDown = false; this.all({ t: "up" }); }
  };

  Hub.prototype.ensureSession = function () {
    if (this.session || this.creating || this.stopped || this.holding) { return; }
    this.creating = true;
    var self = this, attempt = 0;
    function attemptNew() {
      if (!self.liveCount()) { self.creating = false; return; } // nobody waits anymore
      postJSON(self.base + "/new", {}).then(function (response) {
        if (self.stopped) { return; }
        if (response.status === 429 || response.status >= 500) { // busy: the sockets' own
          self.down();                                            // timers bound the wait
          return self.timer("new", attemptNew, retryAfter(response, attempt++));
        }
        if (!response.ok) { throw new Error("S/new: " + response.status); }
        return response.json().then(function (answer) {
          if (self.stopped) { return; }
          self.creating = false;
          var session = { id: answer.session, secret: answer.secret,
            maxBatch: answer.max_batch, heartbeat: answer.heartbeat };
          if (!self.liveCount()) { return self.closeRemote(session); } // nobody waits anymore
          self.session = session;
          self.cursor = 0;
          self.live = false;
          self.all(Object.assign({ t: "session" }, sessionFields(session)));
          self.connect();
        });
      }, function () { // the network: try again a little later
        if (self.stopped) { return; }
        self.down();
        self.timer("new", attemptNew, backoff(attempt++));
      }).catch(function () {
        if (self.stopped) { return; }
        self.creating = false;
        self.over(null); // refused (4xx): the sockets waiting for it fail
      });
    }
    attemptNew();
  };

  // The stream: fetch() with the secret in headers, Last-Event-ID, `retry:`, backoff.

  Hub.prototype.connect = function () {
    if (this.stopped || !this.session || this.holding || this.stream) { return; }
    var self = this, session = this.session, control = new AbortController();
    this.stream = control;
    this.untimer("stream");
    var headers = { "X-AltWS-Session": session.id, "X-AltWS-Secret": session.secret };
    if (this.cursor) { headers["Last-Event-ID"] = String(this.cursor); }
    fetch(this.base + "/", { headers: headers, cache: "no-store", signal: control.signal })
      .then(function (response) {
        if (control !== self.stream) {
          if (response.body) { response.body.cancel().catch(noop); }
          return;
        }
        var status = response.status;
        var type = response.headers.get("Content-Type") || "";
        if (status === 200 && response.body && /^text\/event-stream/i.test(type)) {
          return self.read(response, control);
        }
        if (response.body) { response.body.cancel().catch(noop); }
        if (status === 204 || status === 400 || status === 403 || status === 404 || status === 410) {
          return self.over(session); // 204: the session is over; the others: lost
        }
        self.dropped(control, retryAfter(response, self.failures++));
      })
      .catch(function () {
        if (control === self.stream) { self.dropped(control, backoff(self.failures++)); }
      });
  };

  Hub.prototype.read = function (response, control) {
    var self = this, batch = [];
    var reader = response.body.getReader(), decoder = new TextDecoder();
    var parser = new SSEParser(function (event) { batch.push(event); },
      function (ms) { self.retryDelay = ms; });
    this.connected = true;
    this.failures = 0;
    this.up();
    this.lastByte = monotonic();
    this.watchdog(control);
    if (!this.live) { this.live = true; this.kick(); }
    function pump() {
      return reader.read().then(function (chunk) {
        if (control !== self.stream) { reader.cancel().catch(noop); return; }
        if (chunk.done) { return self.dropped(control, self.retryDelay); }
        self.lastByte = monotonic(); // (the watchdog looks at it when its timer fires: no timer per chunk)
        parser.feed(decoder.decode(chunk.value, { stream: true }));
        if (batch.length) {
          var events = batch;
          batch = [];
          self.dispatch(events);
        }
        return pump();
      });
    }
    return pump();
  };

  /** No byte, not even a heartbeat, for too long (2.5 heartbeats + 5 s since `lastByte`, the
   *  last chunk): the connection is dead; reconnect. One timer, re-armed when it fires for
   *  what is left: a timer per chunk cost the page ~30 µs per message (docs/performance.md). */
  Hub.prototype.watchdog = function (control) {
    var self = this, beat = this.session && this.session.heartbeat;
    if (!(beat > 0) || control !== this.stream) { return; }
    var left = this.lastByte + beat * 2500 + 5000 - monotonic();
    if (left > 0) {
      return this.timer("watchdog", function () { self.watchdog(control); }, left);
    }
    control.abort();
    this.dropped(control, 0);
  };

  Hub.prototype.dropped = function (control, delay) {
    if (control !== this.stream) { return; }
    this.stream = null;
    this.connected = false;
    this.untimer("watchdog");
    this.down();
    var self = this;
    this.timer("stream", function () { self.connect(); }, delay);
  };

  /** Read again from `position` (a page may have missed events there). */
  Hub.prototype.rewind = function (position) {
    this.cursor = Math.min(this.cursor, position);
    if (this.stream) {
      var control = this.stream;
      control.abort();
      this.stream = null;
      this.connected = false;
      this.connect();
    }
  };

  Hub.prototype.dispatch = function (events) {
    var out = [], closed = [], ended = false, answers = [];
    for (var i = 0; i < events.length; i++) {
      var e = events[i], id = parseInt(e.id, 10);
      if (e.type === "answer") { answers.push(e.data); continue; } // no id: never stored
      if (!(id > this.cursor)) { continue; } // read already
      this.cursor = id;
      if (e.type === "end") { ended = true; continue; } // the session's own last event
      var payload;
      try { payload = JSON.parse(e.data); } catch (err) { continue; }
      if (!payload || typeof payload.ref !== "string") { continue; }
      var kind = e.type === "message" ? "text" : e.type;
      if (kind !== "text" && kind !== "binary" && kind !== "close") { continue; }
      var item = { id: id, ref: payload.ref, kind: kind, data: payload.data };
      if (kind === "close") {
        item.code = payload.code;
        item.reason = payload.reason;
        if (this.refs[payload.ref]) { closed.push(payload.ref); }
      }
      out.push(item);
    }
    var self = this;
    this.outlets().forEach(function (outlet) {
      var list = outlet.all ? out : out.filter(function (item) {
        var r = self.refs[item.ref];
        return r && !r.orphan && self.peers[r.peer] && self.peers[r.peer].outlet === outlet;
      });
      if (list.length || outlet.all) {
        outlet.post({ t: "events", to: "*", s: self.base, events: list, upTo: self.cursor });
      }
    });
    closed.forEach(function (ref) { self.remove(ref); });
    if (ended) { return this.over(this.session); } // what is still open there is lost: 1006
    answers.forEach(function (data) { self.streamAnswer(data); });
  };

  /** A copy of a POST's answer on the stream, after the events the POST queued: the next
   *  POST may go now, before the HTTP answer (which is then ignored) comes back. */
  Hub.prototype.streamAnswer = function (data) {
    var body, pending = this.pending;
    try { body = JSON.parse(data); } catch (e) { return; }
    if (!pending || !body || body.rid !== pending.rid || !Array.isArray(body.results)) { return; }
    this.settled(pending, body);
  };

  /** The successful answer of the pending POST, from the stream or over HTTP. */
  Hub.prototype.settled = function (pending, body) {
    var self = this;
    this.untimer("send"); // (a retry waiting for this answer, lost over HTTP)
    this.pending = null;
    this.sendFailures = 0;
    this.small = false;
    if (this.connected) { this.up(); }
    pending.ops.forEach(function (op, i) { self.result(op, body.results[i] || {}); });
    this.sending = false;
    this.kick();
  };

  /** The session is over (204, 410) or lost (403, 404…): each of its sockets fails (1006). */
  Hub.prototype.over = function (session) {
    if (session && session !== this.session) { return; }
    var refs = this.refs;
    this.reset();
    for (var ref in refs) {
      if (!refs[ref].orphan) { this.post(refs[ref].peer, { t: "failed", ref: ref, code: ABNORMAL }); }
    }
    this.all({ t: "session", session: null, secret: null });
    this.changed();
  };

  Hub.prototype.reset = function () {
    if (this.stream) { this.stream.abort(); this.stream = null; }
    ["stream", "watchdog", "send", "wake", "new", "idle"].forEach(this.untimer, this);
    this.session = null;
    this.creating = false;
    this.connected = false;
    this.live = false;
    this.cursor = 0;
    this.sending = false;
    this.pending = null;
    this.outstanding = 0;
    this.refs = {};
    this.order = [];
    this.former = {};
  };

  Hub.prototype.closeRemote = function (session) {
    try {
      fetch(this.base + "/close", { method: "POST", keepalive: true, cache: "no-store",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body: JSON.stringify({ session: session.id, secret: session.secret }) }).catch(noop);
    } catch (e) { /* best effort */ }
  };

  /** No socket left: POST S/close, stop the stream; the next socket starts a new session. */
  Hub.prototype.closeSession = function () {
    var session = this.session;
    this.reset();
    if (session) { this.closeRemote(session); }
    this.all({ t: "session", session: null, secret: null });
  };

  /** Stop for good (the page holding this hub goes away); the server is not told. */
  Hub.prototype.stop = function () {
    if (this.stream) { this.stream.abort(); this.stream = null; }
    for (var name in this.timers) { clearTimeout(this.timers[name]); }
    this.timers = {};
    this.stopped = true;
  };

  // The uplink: one POST S/send at a time, carrying the ops of every socket. The next may
  // go once the last is answered on the stream, while its HTTP answer is still on its way
  // (at most MAX_OUTSTANDING such answers awaited at once).

  Hub.prototype.kick = function () {
    var self = this;
    if (this.kickQueued) { return; }
    this.kickQueued = true;
    soon(function () { self.kickQueued = false; self.flush(); });
  };

  Hub.prototype.flush = function () {
    if (this.sending || this.stopped || !this.session || !this.live || this.holding ||
        this.outstanding >= MAX_OUTSTANDING) { return; }
    var now_ = now(), ops = [], wake = Infinity, bytes = 0, messages = 0;
    var budget = this.small ? 1 : Math.max(1, Math.min(this.limits.maxBatch,
      this.session.maxBatch || Infinity));
    var maxBytes = this.limits.batchBytes, n = this.order.length, first = this.turn++ % (n || 1);
    for (var k = 0; k < n && messages < budget && !(bytes >= maxBytes); k++) {
      var r = this.refs[this.order[(first + k) % n]];
      if (!r) { continue; }
      if (r.retryAt > now_) { wake = Math.min(wake, r.retryAt); continue; }
      if (!r.opened && !r.orphan) {
        ops.push({ op: "open", ref: r.ref, app: r.app, protocols: r.protocols });
        r.posted = true;
      }
      var take = [];
      for (var i = 0; i < r.msgs.length && messages < budget; i++) {
        var m = r.msgs[i];
        if (messages && bytes + m.size > maxBytes) { break; }
        take.push(m.binary !== undefined ? { seq: m.seq, binary: m.binary } : { seq: m.seq, data: m.data });
        bytes += m.size;
        messages++;
      }
      if (take.length) { ops.push({ op: "send", ref: r.ref, messages: take }); }
      if (r.close && !r.closeDone && take.length === r.msgs.length) {
        var close = { op: "close", ref: r.ref };
        if (r.close.code !== undefined) { close.code = r.close.code; close.reason = r.close.reason || ""; }
        ops.push(close);
      }
    }
    if (!ops.length) {
      var self = this;
      if (wake < Infinity) { this.timer("wake", function () { self.flush(); }, wake - now_); }
      return;
    }
    this.post_(ops);
  };

  Hub.prototype.post_ = function (ops) {
    var self = this, session = this.session, pending = { rid: ++this.rid, ops: ops };
    this.sending = true;
    this.pending = pending;
    this.outstanding++;
    function back() { // the HTTP answer (or its failure) is in: true if it still matters
      if (session !== self.session || self.stopped) { return false; }
      self.outstanding--;
      if (self.pending === pending) { return true; }
      self.kick(); // answered on the stream already; a POST may have waited for this one
      return false;
    }
    var posted = postJSON(this.base + "/send", { session: session.id, secret: session.secret,
      rid: pending.rid, ops: ops });
    ops.forEach(function (op) { // handed to the network: bufferedAmount drops (see sentUpTo)
      var r = op.op === "send" && self.refs[op.ref];
      if (r && !r.orphan) {
        self.post(r.peer, { t: "sent", ref: op.ref, upTo: op.messages[op.messages.length - 1].seq });
      }
    });
    posted
      .then(function (response) {
        if (self.pending !== pending && response.ok) {
          back(); // answered on the stream already: its body would say the same, unread
          return;
        }
        return readJSON(response).then(function (body) {
          if (back()) {
            self.pending = null;
            self.answered(pending, response, body);
          }
        });
      }, function () {
        if (!back()) { return; }
        self.down();
        // the same seqs again after the backoff (no duplicates on the server), unless the
        // copy of the answer comes on the stream meanwhile: the server did run them
        self.retrySend(backoff(self.sendFailures++), pending);
      });
  };

  Hub.prototype.retrySend = function (delay, pending) {
    var self = this;
    this.sending = true;
    this.timer("send", function () {
      if (pending && self.pending === pending) { self.pending = null; }
      self.sending = false;
      self.flush();
    }, delay);
  };

  Hub.prototype.answered = function (pending, response, body) {
    var status = response.status, ops = pending.ops;
    if (response.ok && body && Array.isArray(body.results)) { return this.settled(pending, body); }
    if (status === 429 || status >= 500) {
      this.down();
      return this.retrySend(retryAfter(response, this.sendFailures++));
    }
    if (status === 413) {
      var count = 0, last = null;
      ops.forEach(function (op) { if (op.op === "send") { count += op.messages.length; last = op; } });
      if (count > 1) { this.small = true; }
      else if (last && this.refs[last.ref]) { this.fail(this.refs[last.ref], TOO_BIG); }
      this.sending = false;
      return this.kick();
    }
    this.over(this.session); // 400, 403 wrong secret, 404 unknown session, 410 closed session
  };

  Hub.prototype.result = function (op, res) {
    var r = this.refs[op.ref];
    if (!r) { return; }
    if (res.ok) {
      r.attempts = 0;
      if (op.op === "open") {
        r.opened = true;
        if (!r.orphan) {
          this.post(r.peer, { t: "opened", ref: r.ref, protocol: res.protocol || "",
            extensions: res.extensions || "", session: this.session.id });
        }
      } else if (op.op === "send") {
        this.acked(r, res.ack);
      } else if (op.op === "close") {
        r.closeDone = true;
        if (r.orphan) { this.remove(r.ref); }
      }
      return;
    }
    var status = res.status;
    if (status === 424) { return; } // skipped after an earlier op of the same ref: next POST
    if (status === 429 || status >= 500) {
      r.retryAt = now() + (typeof res.retry_after === "number"
        ? Math.min(res.retry_after * 1000, 30000) : backoff(r.attempts++));
      return;
    }
    if (r.orphan) { return this.remove(r.ref); }
    if (op.op === "send" && status === 409 && typeof res.expected === "number") {
      this.acked(r, res.expected - 1);
      if (r.msgs.length && r.msgs[0].seq !== res.expected) { this.fail(r, ABNORMAL); }
      return;
    }
    if (op.op === "send" && status === 410) {
      r.msgs = []; // closed on the server: its close event is on the stream
      return this.post(r.peer, { t: "gone", ref: r.ref });
    }
    if (op.op === "close" && status === 410) { r.closeDone = true; return; }
    if (op.op === "open") { r.posted = false; } // it was not created: nothing to close
    this.fail(r, op.op === "send" && status === 413 ? TOO_BIG : ABNORMAL);
  };

  Hub.prototype.acked = function (r, ack) {
    if (typeof ack !== "number") { return; }
    r.msgs = r.msgs.filter(function (m) { return m.seq > ack; });
    if (ack > r.acked) {
      r.acked = ack;
      this.post(r.peer, { t: "ack", ref: r.ref, ack: ack });
    }
  };

  Hub.prototype.fail = function (r, code) {
    this.post(r.peer, { t: "failed", ref: r.ref, code: code });
    this.orphan(r);
  };

  // --- where the hub runs: a SharedWorker, the tab holding a Web Lock, or the page ----------

  /** In-page delivery, asynchronous like a port's. */
  function localOutlet(link) {
    return { all: true, post: function (msg) { soon(function () { link.receive(msg); }); } };
  }

  /** The page holds the hub itself (no SharedWorker, no Web Locks, or share: "page"). */
  function PageBackend(link) {
    this.link = link;
    this.hub = new Hub(link.base, {});
    this.outlet = localOutlet(link);
  }
  PageBackend.prototype.hello = function () {
    var self = this;
    soon(function () { self.hub.hello(TAB, self.outlet, self.link.helloInfo()); });
  };
  PageBackend.prototype.send = function (msg) {
    var hub = this.hub;
    soon(function () { hub.op(TAB, msg); });
  };
  PageBackend.prototype.leave = function () { this.hub.stop(); };

  /**
   * One tab per browser holds the hub: the one holding the Web Lock "altwebsocket leader S".
   * The others reach it over the BroadcastChannel "altwebsocket S". When it dies, the next
   * tab waiting for the lock takes over (Hub.hold: it asks everyone where they are).
   */
  function TabsBackend(link) {
    var self = this;
    this.link = link;
    this.hub = null;
    this.left = false;
    this.gonePeers = {};  // peer id -> {refs, at}: tabs that said bye lately, none here leading
    this.outlet = localOutlet(link);
    this.channel = new root.BroadcastChannel("altwebsocket " + link.base);
    this.channelOutlet = { all: true, post: function (msg) { self.channel.postMessage(msg); } };
    this.channel.onmessage = function (e) { self.heard(e.data); };
    this.watched = {};
    whenTabLocked(function () {
      if (self.left) { return; }
      LOCKS.request("altwebsocket leader " + link.base, function () {
        if (self.left) { return; }
        return new Promise(function (resolve) {
          self.release = resolve;
          self.lead();
        });
      }).catch(function () { link.fallBack("page"); });
    });
  }

  TabsBackend.prototype.heard = function (msg) {
    if (!msg || this.left) { return; }
    if (msg.hub) {
      var hub = this.hub;
      if (!hub) {
        if (msg.t === "bye") { // not to wait for it, but to close its sockets if we lead next
          var at = monotonic(), gone = this.gonePeers;
          for (var id in gone) { if (at - gone[id].at > GONE_KEPT) { delete gone[id]; } }
          gone[msg.from] = { refs: this.link.registry[msg.from] || [], at: at };
          delete this.link.registry[msg.from];
        }
        return;
      }
      if (msg.t === "hello") { hub.hello(msg.from, this.channelOutlet, msg); }
      else if (msg.t === "bye") { hub.gone(msg.from); }
      else { hub.op(msg.from, msg); }
      return;
    }
    if (msg.t === "leader") {
      if (msg.epoch !== this.link.epoch) { this.link.epoch = null; this.hello(); }
      return;
    }
    this.link.receive(msg);
  };

  TabsBackend.prototype.lead = function () {
    var self = this, link = this.link;
    var hub = this.hub = new Hub(link.base, { watch: function (peerId) { self.watch(peerId); } });
    var former = {};
    for (var id in link.registry) { if (id !== TAB) { former[id] = link.registry[id]; } }
    hub.hold(Object.keys(former), former,
      link.session ? { id: link.session, secret: link.secret, heartbeat: link.heartbeat,
        maxBatch: link.maxBatch } : null, 2000);
    // A tab that left just before (the leader itself, most often: the handoff follows its
    // goodbye) closed its sockets by beacon, which a browser may drop: close them again (a
    // close of a closed connection is answered `already_closed`). A tab that left earlier,
    // under another leader, was that leader's to close.
    var gone = this.gonePeers, at = monotonic();
    this.gonePeers = {};
    for (var peer in gone) {
      if (gone[peer].refs.length && at - gone[peer].at <= GONE_KEPT) {
        hub.former[peer] = gone[peer].refs;
        hub.gone(peer);
      }
    }
    link.epoch = null;
    hub.hello(TAB, this.outlet, link.helloInfo());
    this.channel.postMessage({ t: "leader", epoch: hub.epoch });
  };

  /** Learn when a peer tab dies: its Web Lock becomes free. */
  TabsBackend.prototype.watch = function (peerId) {
    var self = this;
    if (peerId === TAB || this.watched[peerId]) { return; }
    this.watched[peerId] = true;
    LOCKS.request(tabLockName(peerId), function () {
      delete self.watched[peerId];
      if (self.hub && !self.left) { self.hub.gone(peerId); }
    }).catch(noop);
  };

  TabsBackend.prototype.hello = function () {
    var self = this;
    // Only once this page holds its own lock: the hub waits on it to learn of its death.
    whenTabLocked(function () {
      if (self.left) { return; }
      if (self.hub) { return self.hub.hello(TAB, self.outlet, self.link.helloInfo()); }
      self.channel.postMessage(Object.assign({ hub: true, t: "hello", from: TAB }, self.link.helloInfo()));
    });
  };

  TabsBackend.prototype.send = function (msg) {
    var hub = this.hub;
    if (hub) { soon(function () { hub.op(TAB, msg); }); }
    else { this.channel.postMessage(Object.assign({ hub: true, from: TAB }, msg)); }
  };

  TabsBackend.prototype.leave = function () {
    if (this.left) { return; }
    if (this.hub) { this.hub.stop(); } // the next tab takes over from the sockets' own state
    this.channel.postMessage({ hub: true, t: "bye", from: TAB });
    this.left = true;
    if (this.release) { this.release(); }
    this.channel.close();
  };

  /** The page's port to the SharedWorker (one per page, shared by every session base). */
  var WORKER = null;
  function sharedWorker(url) {
    if (WORKER && WORKER.url === url && !WORKER.broken) { return WORKER; }
    var worker = new root.SharedWorker(url, { name: "altwebsocket" });
    var w = { url: url, port: worker.port, links: {}, broken: false };
    worker.onerror = function () {
      w.broken = true;
      for (var base in w.links) { if (!w.links[base].epoch) { w.links[base].fallBack("tabs"); } }
    };
    w.port.onmessage = function (e) {
      var msg = e.data, link = msg && w.links[msg.s];
      if (link) { link.receive(msg); }
    };
    w.port.start();
    WORKER = w;
    return w;
  }

  function WorkerBackend(link, url) {
    this.link = link;
    this.w = sharedWorker(url);
    this.w.links[link.base] = link;
    var self = this;
    // A worker that does not answer (blocked by a CSP, a broken script): use the tabs.
    this.timer = setTimeout(function () {
      if (!link.epoch && link.backend === self) { link.fallBack("tabs"); }
    }, 5000);
  }
  WorkerBackend.prototype.hello = function () {
    var w = this.w, link = this.link;
    whenTabLocked(function () {
      if (link.backend.w === w) {
        w.port.postMessage(Object.assign({ t: "hello", s: link.base, from: TAB }, link.helloInfo()));
      }
    });
  };
  WorkerBackend.prototype.send = function (msg) {
    msg.s = this.link.base;
    msg.from = TAB;
    this.w.port.postMessage(msg);
  };
  WorkerBackend.prototype.leave = function () {
    clearTimeout(this.timer);
    if (this.w.links[this.link.base] === this.link) {
      this.w.port.postMessage({ t: "bye", s: this.link.base, from: TAB });
      delete this.w.links[this.link.base];
    }
  };
  WorkerBackend.prototype.detach = function () {
    clearTimeout(this.timer);
    if (this.w.links[this.link.base] === this.link) { delete this.w.links[this.link.base]; }
  };

  /** The SharedWorker side: this file loaded in a SharedWorkerGlobalScope runs the hubs. */
  function runWorker(scope) {
    var hubs = {}, watched = {};
    function hubFor(base) { return hubs[base] || (hubs[base] = new Hub(base, { watch: watch })); }
    function watch(peerId) {
      if (!LOCKS || watched[peerId]) { return; }
      watched[peerId] = true;
      LOCKS.request(tabLockName(peerId), function () {
        delete watched[peerId];
        for (var base in hubs) { hubs[base].gone(peerId); }
      }).catch(noop);
    }
    scope.onconnect = function (event) {
      var port = event.ports[0];
      var outlet = { all: false, post: function (msg) { port.postMessage(msg); } };
      port.onmessage = function (e) {
        var msg = e.data;
        if (!msg || typeof msg.s !== "string" || typeof msg.from !== "string") { return; }
        var hub = hubFor(msg.s);
        if (msg.t === "hello") { hub.hello(msg.from, outlet, msg); }
        else if (msg.t === "bye") { hub.gone(msg.from); }
        else { hub.op(msg.from, msg); }
      };
      port.start();
    };
  }

  // --- the page side: one Link per session base and mode, shared by the page's sockets --------

  var LINKS = {};
  function linkFor(base, mode, options) {
    var key = mode + " " + base, link = LINKS[key];
    if (!link || link.gone) { link = LINKS[key] = new Link(base, mode, options); }
    return link;
  }

  function Link(base, mode, options) {
    var self = this;
    this.base = base;
    this.mode = mode;
    this.options = options;
    this.sockets = {};
    this.epoch = null;        // the epoch of the hub that welcomed this page
    this.position = null;     // the last session event id this page has processed
    this.session = null;      // the session (id, secret, heartbeat, maxBatch) as the hub said
    this.secret = null;
    this.heartbeat = null;
    this.maxBatch = null;
    this.registry = {};       // peer id -> its live refs, as the hub last said
    this.drops = [];          // refs dropped while no hub was there
    this.gone = false;
    this.backend = null;
    try {
      if (mode === "worker") { this.backend = new WorkerBackend(this, options.workerURL || SCRIPT_URL); }
    } catch (e) { mode = "tabs"; }
    try {
      if (mode === "tabs") { this.backend = new TabsBackend(this); }
    } catch (e) { mode = "page"; }
    if (!this.backend) { this.backend = new PageBackend(this); }
    this.backend.hello();
    if (root.addEventListener) {
      this.onPageHide = function () { self.leave(); };
      this.onPageShow = function (e) { if (e.persisted && self.gone) { self.lost(); } };
      root.addEventListener("pagehide", this.onPageHide);
      root.addEventListener("pageshow", this.onPageShow);
    }
  }

  /** The worker or the tabs failed us before any hub answered: use the next way. */
  Link.prototype.fallBack = function (mode) {
    if (this.gone || this.epoch) { return; }
    if (this.backend.detach) { this.backend.detach(); }
    this.backend = null;
    if (mode === "tabs") {
      try { this.backend = new TabsBackend(this); } catch (e) { this.backend = null; }
    }
    if (!this.backend) { this.backend = new PageBackend(this); }
    this.backend.hello();
  };

  Link.prototype.helloInfo = function () {
    return { position: this.position, session: this.session, secret: this.secret,
      heartbeat: this.heartbeat, maxBatch: this.maxBatch,
      limits: { maxBatch: this.options.maxBatch, batchBytes: this.options.batchBytes } };
  };

  Link.prototype.learn = function (msg) {
    this.session = msg.session || null;
    this.secret = msg.secret || null;
    this.heartbeat = msg.heartbeat || null;
    this.maxBatch = msg.maxBatch || null;
  };

  Link.prototype.add = function (socket) {
    this.sockets[socket.ref] = socket;
    socket.hand();
  };

  Link.prototype.remove = function (socket) {
    if (this.sockets[socket.ref] === socket) { delete this.sockets[socket.ref]; }
  };

  Link.prototype.post = function (msg) {
    if (this.gone) { return; }
    if (!this.epoch) {
      if (msg.t === "drop") { this.drops.push(msg.ref); }
      return; // handed again once a hub welcomes this page
    }
    msg.epoch = this.epoch;
    this.backend.send(msg);
  };

  Link.prototype.each = function (fn) {
    for (var ref in this.sockets) { fn(this.sockets[ref]); }
  };

  Link.prototype.receive = function (msg) {
    if (this.gone || !msg || (msg.to && msg.to !== "*" && msg.to !== TAB)) { return; }
    var self = this;
    switch (msg.t) {
      case "welcome":
        this.epoch = msg.epoch;
        this.learn(msg);
        if (this.position === null && typeof msg.upTo === "number") { this.position = msg.upTo; }
        this.drops.splice(0).forEach(function (ref) { self.post({ t: "drop", ref: ref }); });
        this.each(function (socket) { socket.hand(); });
        this.each(function (socket) { if (msg.down) { socket.down(); } else { socket.up(); } });
        return;
      case "session":
        return this.learn(msg);
      case "peers":
        this.registry = msg.peers || {};
        return;
      case "events":
        msg.events.forEach(function (event) {
          var socket = self.sockets[event.ref];
          if (socket) { socket.event(event); }
        });
        if (typeof msg.upTo === "number") { this.position = Math.max(this.position || 0, msg.upTo); }
        return;
      case "down":
        return this.each(function (socket) { socket.down(); });
      case "up":
        return this.each(function (socket) { socket.up(); });
      default:
        var socket = this.sockets[msg.ref];
        if (socket) { socket.fromHub(msg); }
    }
  };

  /**
   * pagehide: this page's sockets close on the server at once (sendBeacon: their messages not
   * yet acknowledged, then a close op each), then S/close: "unless_open" the sockets of the
   * other pages, so that the last page closes the session.
   */
  Link.prototype.leave = function () {
    if (this.gone) { return; }
    var ops = [], budget = { bytes: 48 * 1024 };
    this.each(function (socket) { socket.release(ops, budget); });
    if (this.session && this.secret) {
      var body = { session: this.session, secret: this.secret };
      if (ops.length) { beacon(this.base + "/send", Object.assign({ ops: ops }, body)); }
      // The last page closes the session. What the hub last said of the other pages may be
      // late (a tab that has just left): the server keeps the session only while one of
      // their sockets is open there, or not known yet (its open on its way).
      var others = [];
      for (var id in this.registry) {
        if (id !== TAB) { others = others.concat(this.registry[id]); }
      }
      if (others.length <= 1000) { // (the most the server takes; past that, no S/close)
        beacon(this.base + "/close", others.length ?
          Object.assign({ unless_open: others }, body) : body);
      }
    }
    this.gone = true;
    this.backend.leave();
  };

  /** Back from the back/forward cache after leave(): those sockets are closed on the server. */
  Link.prototype.lost = function () {
    this.each(function (socket) { socket.fail(ABNORMAL, true); });
    root.removeEventListener("pagehide", this.onPageHide);
    root.removeEventListener("pageshow", this.onPageShow);
  };

  // --- transport: a socket of a shared session --------------------------------------------------

  /**
   * A socket on the browser's session (version 2): it keeps its messages until the server
   * acknowledges them, and the id of the last event it delivered; the hub only carries them.
   */
  function SharedEmulation(owner, base, app, protocols, options, link) {
    this.name = "emulation";
    this.owner = owner;
    this.base = base;
    this.app = app;
    this.protocols = protocols;
    this.options = options;
    this.link = link;
    this.ref = TAB + "." + (++REFS);
    this.protocol = "";
    this.extensions = "";
    this.nextSeq = 1;
    this.acked = 0;
    this.queue = [];          // {seq, size, data | bytes | blob | binary} not yet acknowledged
    this.handed = 0;          // the last seq handed to the current hub
    this.converting = false;
    this.closeHanded = false;
    this.lastEventId = 0;     // session event id of the last event delivered
    this.opened = false;
    this.sid = null;          // the session it was opened in
    this.early = [];          // events that came before the answer to "open"
    this.done = false;
    this.closeRequest = null;
    this.downTimer = null;
    this.timers = [];
  }

  SharedEmulation.prototype.later = Emulation.prototype.later;

  SharedEmulation.prototype.attach = function (callbacks) {
    var self = this;
    this.callbacks = callbacks;
    this.later(function () { if (!self.opened) { self.fail(); } }, this.options.reconnectTimeout);
    this.link.add(this);
  };

  /** Give the current hub everything it needs: open, the unacknowledged messages, close. */
  SharedEmulation.prototype.hand = function () {
    if (this.done || !this.link.epoch) { return; }
    this.handed = this.acked;
    this.closeHanded = false;
    this.link.post({ t: "open", ref: this.ref, app: this.app, protocols: this.protocols,
      opened: this.opened, sid: this.sid, acked: this.acked });
    this.more();
  };

  SharedEmulation.prototype.more = function () {
    if (this.done || !this.link.epoch || this.converting) { return; }
    var batch = [], self = this;
    for (var i = 0; i < this.queue.length; i++) {
      var item = this.queue[i];
      if (item.seq <= this.handed) { continue; }
      if (item.bytes) { item.binary = toBase64(item.bytes); item.bytes = null; }
      if (item.blob) {
        this.converting = true;
        item.blob.arrayBuffer().then(function (buffer) {
          item.binary = toBase64(new Uint8Array(buffer));
          item.blob = null;
          self.converting = false;
          self.more();
        }, function () { self.converting = false; self.fail(); });
        break;
      }
      batch.push(item.binary !== undefined
        ? { seq: item.seq, binary: item.binary, size: item.size }
        : { seq: item.seq, data: item.data, size: item.size });
      this.handed = item.seq;
    }
    if (batch.length) { this.link.post({ t: "send", ref: this.ref, messages: batch }); }
    if (this.closeRequest && !this.closeHanded && !this.converting &&
        this.handed >= this.nextSeq - 1) {
      this.closeHanded = true;
      this.link.post({ t: "close", ref: this.ref, code: this.closeRequest.code,
        reason: this.closeRequest.reason });
    }
  };

  SharedEmulation.prototype.send = function (item) {
    if (this.done || this.closeRequest) { return; }
    item.seq = this.nextSeq++;
    this.queue.push(item);
    this.more();
  };

  SharedEmulation.prototype.fromHub = function (msg) {
    if (this.done) { return; }
    if (msg.t === "opened") { return this.openAnswered(msg); }
    if (msg.t === "failed") { return this.fail(msg.code, true); }
    if (msg.t === "ack") { return this.acknowledge(msg.ack); }
    if (msg.t === "sent") { return this.sentUpTo(msg.upTo); }
    if (msg.t === "gone") { // closed on the server: its close event is on the stream
      this.queue = [];
      this.handed = this.nextSeq - 1;
      this.more();
    }
  };

  SharedEmulation.prototype.openAnswered = function (msg) {
    if (this.opened) { return; }
    this.opened = true;
    this.sid = msg.session || this.link.session;
    this.protocol = msg.protocol || "";
    this.extensions = msg.extensions || "";
    if (!acceptedProtocol(this.protocols, this.protocol)) {
      return this.fail(); // like native: none of those offered, or one never offered
    }
    this.callbacks.open(this.protocol, this.extensions);
    var early = this.early;
    this.early = [];
    for (var i = 0; i < early.length && !this.done; i++) { this.deliver(early[i]); }
  };

  SharedEmulation.prototype.event = function (event) {
    if (this.done || !(event.id > this.lastEventId)) { return; } // delivered already
    this.lastEventId = event.id;
    if (!this.opened) { this.early.push(event); return; }
    this.deliver(event);
  };

  SharedEmulation.prototype.deliver = function (event) {
    if (event.kind === "close") {
      var code = typeof event.code === "number" ? event.code : NO_STATUS;
      return this.finish(code, typeof event.reason === "string" ? event.reason : "", code !== ABNORMAL);
    }
    var payload = event.data;
    if (event.kind === "binary") {
      try { payload = fromBase64(payload); } catch (err) { return this.fail(); }
    } else if (typeof payload !== "string") {
      return this.fail();
    }
    this.callbacks.message(payload, null);
  };

  /** The hub put the messages up to `upTo` in a request: bufferedAmount no longer counts
   *  them (they stay queued here, for another hub, until acknowledged). */
  SharedEmulation.prototype.sentUpTo = function (upTo) {
    var bytes = 0;
    for (var i = 0; i < this.queue.length && this.queue[i].seq <= upTo; i++) {
      if (!this.queue[i].sent) { this.queue[i].sent = true; bytes += this.queue[i].size; }
    }
    if (bytes) { this.callbacks.acked(bytes); }
  };

  SharedEmulation.prototype.acknowledge = function (ack) {
    var bytes = 0;
    while (this.queue.length && this.queue[0].seq <= ack) {
      var item = this.queue.shift();
      if (!item.sent) { bytes += item.size; }
    }
    if (ack > this.acked) { this.acked = ack; }
    if (this.handed < this.acked) { this.handed = this.acked; }
    if (bytes) { this.callbacks.acked(bytes); }
  };

  SharedEmulation.prototype.close = function (code, reason) {
    if (this.done || this.closeRequest) { return; }
    var self = this;
    this.closeRequest = { code: code, reason: reason };
    this.later(function () { self.fail(); }, this.options.closeTimeout);
    this.more();
  };

  SharedEmulation.prototype.down = function () {
    var self = this;
    if (this.done || this.downTimer) { return; }
    this.downTimer = this.later(function () { self.fail(); }, this.options.reconnectTimeout);
  };

  SharedEmulation.prototype.up = function () {
    if (!this.downTimer) { return; }
    clearTimeout(this.downTimer);
    this.timers.splice(this.timers.indexOf(this.downTimer), 1);
    this.downTimer = null;
  };

  /** pagehide: add this socket's last messages and its close to the page's beacon. */
  SharedEmulation.prototype.release = function (ops, budget) {
    if (this.done) { return; }
    var messages = [];
    for (var i = 0; i < this.queue.length; i++) {
      var item = this.queue[i];
      var wire = item.binary !== undefined ? { seq: item.seq, binary: item.binary }
        : item.data !== undefined ? { seq: item.seq, data: item.data } : null;
      if (!wire || item.size * 1.4 + 32 > budget.bytes) { break; }
      budget.bytes -= item.size * 1.4 + 32;
      messages.push(wire);
    }
    if (messages.length) { ops.push({ op: "send", ref: this.ref, messages: messages }); }
    ops.push({ op: "close", ref: this.ref });
  };

  SharedEmulation.prototype.teardown = function () {
    this.done = true;
    this.timers.forEach(clearTimeout);
    this.timers = [];
    this.link.remove(this);
  };

  SharedEmulation.prototype.finish = function (code, reason, wasClean) {
    if (this.done) { return; }
    this.teardown();
    this.callbacks.close(code, reason, wasClean);
  };

  SharedEmulation.prototype.fail = function (code, fromHub) {
    if (this.done) { return; }
    this.teardown();
    if (!fromHub) { this.link.post({ t: "drop", ref: this.ref }); }
    this.callbacks.error();
    this.callbacks.close(code || ABNORMAL, "", false);
  };

  /** Stop at once, silently (close() while CONNECTING); the hub closes it on the server. */
  SharedEmulation.prototype.detach = function () {
    if (this.done) { return; }
    this.teardown();
    this.link.post({ t: "drop", ref: this.ref });
  };

  // --- the public class --------------------------------------------------------------------

  var HANDLERS = ["open", "message", "error", "close"];

  /** As native: the URL is required (undefined would become the relative URL "undefined"). */
  function requireURL(count, name) {
    if (count === 0) {
      throw new TypeError("Failed to construct '" + name + "': 1 argument required, but only 0 present.");
    }
  }

  /**
   * AltWebSocket(url, emulate, protocols, options): the WebSocket API over the emulation
   * or the native WebSocket. See the file header and docs/client.md.
   */
  class AltWebSocket extends EventTarget {
    constructor(url, emulate, protocols, options) {
      super();
      requireURL(arguments.length, "AltWebSocket");
      var mode = parseMode(emulate);
      if (mode === null) { // new AltWebSocket(url, protocols): the native signature, auto mode
        options = protocols;
        protocols = emulate;
        mode = "auto";
      }
      var parsed = parseURL(url);
      var list = parseProtocols(protocols);
      var p = this._p = {
        url: parsed.href,
        origin: parsed.origin,   // of every message event (the socket URL's, as native)
        given: String(url),
        base: httpBase(parsed),
        mode: mode,
        protocols: list,
        options: Object.assign({}, DEFAULTS, options || {}),
        state: CONNECTING,
        protocol: "",
        extensions: "",
        binaryType: "blob",
        buffered: 0,
        transport: null,
        handlers: {},
        abort: new AbortController()
      };
      var self = this;
      if (mode === "emulation") {
        if (shareMode(p.options)) { // version 2 if B/info offers it
          this._info().then(function (info) {
            if (p.state === CONNECTING && !p.transport) { self._emulate(info); }
          });
        } else {
          this._use(new Emulation(this, p.base, list, p.options, null));
        }
      } else if (mode === "native" && /^wss?:/i.test(p.given.trim())) {
        this._native(p.url, false);
      } else {
        this._info().then(function (info) {
          if (p.state !== CONNECTING || p.transport) { return; }
          var target = info && typeof info.websocket === "string" ? info.websocket : "";
          if (mode === "native") {
            if (!target) { return self._failLater(); }
            self._native(target, false);
          } else if (target) {
            self._native(target, true, info);
          } else if (!info && /^wss?:/i.test(p.given.trim())) {
            self._native(p.url, false); // a ws:// URL of no AltWebSocket server: a WebSocket's
          } else {
            self._emulate(info);
          }
        });
      }
    }

    /** B/info (shared by the page's sockets for a while); null when it fails or close(). */
    _info() {
      var p = this._p, signal = p.abort.signal;
      var shared = fetchInfo(p.base, p.options.infoTimeout);
      return new Promise(function (resolve) {
        if (signal.aborted) { return resolve(null); }
        signal.addEventListener("abort", function () { resolve(null); });
        shared.then(resolve);
      });
    }

    /** The emulation: on the browser's shared session (version 2) if the server has it. */
    _emulate(info) {
      var p = this._p, mode = shareMode(p.options), target = sessionTarget(p.base);
      if (mode && target && supportsSessions(info)) {
        var link = linkFor(target.base, mode, p.options);
        return this._use(new SharedEmulation(this, p.base, target.app, p.protocols, p.options, link));
      }
      this._use(new Emulation(this, p.base, p.protocols, p.options, info));
    }

    _native(target, probe, info) {
      var self = this, p = this._p, transport;
      try {
        transport = new NativeTransport(this, target, p.protocols);
      } catch (e) {
        if (probe) { return this._emulate(info); }
        return this._failLater();
      }
      if (!probe) { return this._use(transport); }
      // Auto mode: the native socket must open within nativeTimeout, else the emulation,
      // and the app never hears of the attempt.
      var settled = false;
      function fallBack() {
        if (settled) { return; }
        settled = true;
        clearTimeout(timer);
        transport.detach();
        if (p.state === CONNECTING) { self._emulate(info); }
      }
      var timer = setTimeout(fallBack, p.options.nativeTimeout);
      p.probe = transport;
      transport.attach({
        open: function () {
          if (settled) { return; }
          settled = true;
          clearTimeout(timer);
          p.probe = null;
          self._use(transport);
          transport.ws.onopen(); // replay the open to the adopted transport's callbacks
        },
        message: function () {}, error: fallBack, close: fallBack
      });
    }

    _use(transport) {
      var self = this, p = this._p;
      p.transport = transport;
      transport.attach({
        open: function (protocol, extensions) {
          if (p.state !== CONNECTING) { return; }
          p.protocol = protocol || "";
          p.extensions = extensions || "";
          p.state = OPEN;
          self.dispatchEvent(new Event("open"));
        },
        message: function (data, origin) {
          if (p.state !== OPEN) { return; }
          if (typeof data !== "string") {
            data = p.binaryType === "arraybuffer"
              ? (data instanceof ArrayBuffer ? data : ownBuffer(data))
              : new Blob([data]);
          }
          self.dispatchEvent(new MessageEvent("message", {
            data: data, origin: origin === null ? p.origin : origin
          }));
        },
        error: function () {
          if (p.closed) { return; }
          p.state = CLOSED;
          self.dispatchEvent(new Event("error"));
        },
        close: function (code, reason, wasClean) {
          if (p.closed) { return; }
          p.state = CLOSED;
          p.closed = true;
          self.dispatchEvent(closeEvent(code, reason, wasClean));
        },
        acked: function (bytes) { p.buffered = Math.max(0, p.buffered - bytes); }
      });
    }

    /** Fail before a transport exists (no daemon for native mode, close() while CONNECTING). */
    _failLater() {
      var self = this, p = this._p;
      setTimeout(function () {
        if (p.closed) { return; }
        p.state = CLOSED;
        p.closed = true;
        self.dispatchEvent(new Event("error"));
        self.dispatchEvent(closeEvent(ABNORMAL, "", false));
      }, 0);
    }

    get url() { return this._p.url; }

    get readyState() {
      var p = this._p;
      if (p.state === OPEN && p.transport && p.transport.name === "native" &&
          p.transport.ws.readyState === CLOSING) {
        return CLOSING; // the server started the closing handshake
      }
      return p.state;
    }

    get bufferedAmount() {
      var p = this._p;
      if (p.transport && p.transport.name === "native") {
        return p.transport.ws.bufferedAmount + p.buffered;
      }
      return p.buffered;
    }

    get protocol() { return this._p.protocol; }
    get extensions() { return this._p.extensions; }

    /** Which transport carries the socket: "native", "emulation", or "" while undecided. */
    get transport() {
      var t = this._p.transport;
      return t ? t.name : "";
    }

    get binaryType() { return this._p.binaryType; }
    set binaryType(value) {
      if (value === "blob" || value === "arraybuffer") { this._p.binaryType = value; }
    }

    send(data) {
      if (arguments.length < 1) {
        throw new TypeError("Failed to execute 'send' on 'WebSocket': 1 argument required, " +
          "but only 0 present.");
      }
      var p = this._p;
      if (p.state === CONNECTING) {
        throw new DOMException("Failed to execute 'send' on 'WebSocket': Still in CONNECTING " +
          "state.", "InvalidStateError");
      }
      var item = {};
      if (typeof Blob !== "undefined" && data instanceof Blob) {
        item.blob = data;
        item.size = data.size;
      } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
        item.bytes = bytesOf(data);
        item.size = item.bytes.byteLength;
      } else {
        item.data = usv(data);
        item.size = encoder.encode(item.data).byteLength;
      }
      var transport = p.transport;
      if (transport && transport.name === "native") {
        transport.send(item.data !== undefined ? item.data : item.blob || item.bytes);
        return;
      }
      p.buffered += item.size;
      if (p.state === OPEN && transport) { transport.send(item); }
    }

    close(code, reason) {
      var p = this._p;
      if (code !== undefined) {
        code = clampCode(code);
        if (code !== 1000 && (code < 3000 || code > 4999)) {
          throw new DOMException("Failed to execute 'close' on 'WebSocket': The close code " +
            "must be either 1000, or between 3000 and 4999. " + code + " is neither.",
            "InvalidAccessError");
        }
      }
      reason = reason === undefined ? "" : usv(reason);
      if (encoder.encode(reason).byteLength > 123) {
        throw new DOMException("Failed to execute 'close' on 'WebSocket': The close reason " +
          "must not be greater than 123 UTF-8 bytes.", "SyntaxError");
      }
      if (p.state === CLOSING || p.state === CLOSED) { return; }
      if (code === undefined && reason) { code = 1000; }
      var transport = p.transport;
      if (p.state === CONNECTING) {
        p.state = CLOSING;
        p.abort.abort();
        if (p.probe) { p.probe.detach(); p.probe = null; }
        if (transport && transport.name === "native") {
          transport.close(code, reason); // the browser fails it: error, then close 1006
        } else {
          if (transport) { transport.detach(); }
          this._failLater();
        }
        return;
      }
      p.state = CLOSING;
      transport.close(code, reason);
    }
  }

  function defineConstants(target) {
    [["CONNECTING", CONNECTING], ["OPEN", OPEN], ["CLOSING", CLOSING], ["CLOSED", CLOSED]]
      .forEach(function (pair) {
        Object.defineProperty(target, pair[0], {
          value: pair[1], enumerable: true, writable: false, configurable: false
        });
      });
  }
  defineConstants(AltWebSocket);
  defineConstants(AltWebSocket.prototype);

  // onopen/onmessage/onerror/onclose: event handler attributes, as the HTML standard defines
  // them (the listener keeps the place where it was first set; null removes it).
  HANDLERS.forEach(function (type) {
    Object.defineProperty(AltWebSocket.prototype, "on" + type, {
      enumerable: true,
      configurable: true,
      get: function () { return this._p.handlers[type] ? this._p.handlers[type].value : null; },
      set: function (value) {
        var handlers = this._p.handlers;
        var handler = typeof value === "function" || (value && typeof value === "object")
          ? value : null;
        if (handler === null) {
          if (handlers[type]) {
            this.removeEventListener(type, handlers[type].listener);
            delete handlers[type];
          }
          return;
        }
        if (handlers[type]) { handlers[type].value = handler; return; }
        var slot = { value: handler };
        var self = this;
        slot.listener = function (event) {
          if (typeof slot.value === "function") { slot.value.call(self, event); }
        };
        handlers[type] = slot;
        this.addEventListener(type, slot.listener);
      }
    });
  });

  Object.defineProperty(AltWebSocket, "defaults", { value: DEFAULTS, enumerable: true });
  // String(ws) is "[object WebSocket]", as for the browser's own (instanceof still tells)
  Object.defineProperty(AltWebSocket.prototype, Symbol.toStringTag, {
    value: "WebSocket", configurable: true
  });

  /** EventSocket(url, protocols, options): the emulation alone (AltWebSocket(url, true)). */
  class EventSocket extends AltWebSocket {
    constructor(url, protocols, options) {
      requireURL(arguments.length, "EventSocket");
      super(url, true, protocols, options);
    }
  }

  if (typeof root.SharedWorkerGlobalScope === "function" && root instanceof root.SharedWorkerGlobalScope) {
    runWorker(root); // loaded as the SharedWorker: run the hubs
  }

  return { AltWebSocket: AltWebSocket, EventSocket: EventSocket };
}));
