/*! AltWebSocket browser client, wire protocol v1 (docs/protocol.md, docs/client.md). MIT.
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
 * One file, no build step. As a classic <script> it defines the globals `AltWebSocket` and
 * `EventSocket`; as a module, `import "./altwebsocket.js"` does the same, and
 * `altwebsocket.mjs` re-exports them as named and default exports.
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
    batchBytes: 1 << 20      // emulation: a POST holds about this many bytes at most
  };

  // --- small helpers ----------------------------------------------------------------------

  function now() { return Date.now(); }

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

  function readJSON(response) {
    return response.text().then(function (text) {
      try { return JSON.parse(text); } catch (e) { return {}; }
    });
  }

  // --- transport: the browser's native WebSocket ------------------------------------------

  /** The native transport: a browser WebSocket whose events are handed to the owner. */
  function NativeTransport(owner, url, protocols) {
    this.name = "native";
    this.owner = owner;
    this.ws = new WebSocket(url, protocols);
    this.ws.binaryType = "arraybuffer";
    this.live = false; // set once the owner adopted it
  }

  NativeTransport.prototype.attach = function (callbacks) {
    var ws = this.ws;
    ws.onopen = function () { callbacks.open(ws.protocol, ws.extensions); };
    ws.onmessage = function (e) { callbacks.message(e.data, e.origin); };
    ws.onerror = function () { callbacks.error(); };
    ws.onclose = function (e) { callbacks.close(e.code, e.reason, e.wasClean); };
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
          if (self.protocols.length && self.protocols.indexOf(self.protocol) < 0) {
            // Like native: offered subprotocols and the server chose none → fail.
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
        return postJSON(self.url("send"), body, signal).then(function (response) {
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

  Emulation.prototype.acknowledge = function (ack) {
    var bytes = 0;
    while (this.queue.length && this.queue[0].seq <= ack) { bytes += this.queue.shift().size; }
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

  // --- the public class --------------------------------------------------------------------

  var HANDLERS = ["open", "message", "error", "close"];

  /**
   * AltWebSocket(url, emulate, protocols, options): the WebSocket API over the emulation
   * or the native WebSocket. See the file header and docs/client.md.
   */
  class AltWebSocket extends EventTarget {
    constructor(url, emulate, protocols, options) {
      super();
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
        this._use(new Emulation(this, p.base, list, p.options, null));
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
          } else {
            self._use(new Emulation(self, p.base, list, p.options, info));
          }
        });
      }
    }

    _info() {
      var p = this._p, signal = p.abort.signal;
      var timer = setTimeout(function () { p.abort.abort(); }, p.options.infoTimeout);
      return fetch(p.base + "/info", { cache: "no-store", signal: signal }).then(function (r) {
        return r.ok ? r.json() : null;
      }).catch(function () { return null; }).then(function (info) {
        clearTimeout(timer);
        return info;
      });
    }

    _native(target, probe, info) {
      var self = this, p = this._p, transport;
      try {
        transport = new NativeTransport(this, target, p.protocols);
      } catch (e) {
        if (probe) { return this._use(new Emulation(this, p.base, p.protocols, p.options, info)); }
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
        if (p.state === CONNECTING) {
          self._use(new Emulation(self, p.base, p.protocols, p.options, info));
        }
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
              ? (data instanceof ArrayBuffer ? data : bytesOf(data).buffer)
              : new Blob([data]);
          }
          self.dispatchEvent(new MessageEvent("message", {
            data: data, origin: origin === null ? new URL(p.url).origin : origin
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
  Object.defineProperty(AltWebSocket.prototype, Symbol.toStringTag, {
    value: "AltWebSocket", configurable: true
  });

  /** EventSocket(url, protocols, options): the emulation alone (AltWebSocket(url, true)). */
  class EventSocket extends AltWebSocket {
    constructor(url, protocols, options) {
      super(url, true, protocols, options);
    }
  }

  return { AltWebSocket: AltWebSocket, EventSocket: EventSocket };
}));
