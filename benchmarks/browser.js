/* The paper's echo procedure inside the page (injected by benchmarks/browser.py).
 *
 * altwsBench.open(url, mode): mode "emulation" / "native" (AltWebSocket with emulate
 *   true / false; "emulation-worker" and "emulation-v1": with {share: "worker"} and
 *   {share: false}), "websocket" (the browser's own WebSocket at a ws:// URL) or "fetch"
 *   (no socket: each round trip is one fetch POST whose answer is the echo) or "sse" (a raw
 *   EventSource on url, each payload POSTed to url as hex text and echoed as one event) or
 *   "socketio" (Socket.IO 4's long-polling, `io(url, {transports: ["polling"]})`, the page
 *   having loaded the server's /socket.io/socket.io.min.js; `send` and the `message` event)
 *   or "socketio-text" (the same, each payload sent as its hex digits).
 * altwsBench.run(rounds, size, timeoutMs): that many round trips of `size` random bytes;
 *   resolves to {total, samples} in ms (performance.now()).
 * altwsBench.close().
 */
(function () {
  "use strict";
  var ws = null;
  var waiting = null;

  function opened(socket, ms) {
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { reject(new Error("no open within " + ms + " ms")); }, ms);
      socket.onopen = function () { clearTimeout(timer); resolve(); };
      socket.onclose = function (e) { clearTimeout(timer); reject(new Error("closed " + e.code)); };
    });
  }

  function same(a, b) {
    if (a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }

  function hex(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i++) { out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16); }
    return out;
  }

  function unhex(text) {
    var out = new Uint8Array(text.length / 2);
    for (var i = 0; i < out.length; i++) { out[i] = parseInt(text.substr(2 * i, 2), 16); }
    return out.buffer;
  }

  // The raw SSE + POST echo: what the emulation does, with nothing else (no framework, no
  // storage, no session); a socket-like object for run().
  function rawSSE(url, ms) {
    var source = new EventSource(url);
    ws = {
      send: function (payload) {
        fetch(url, { method: "POST", body: hex(payload) }).catch(function () {});
      },
      close: function () { source.close(); },
    };
    source.onmessage = function (e) {
      var w = waiting; waiting = null;
      if (w) { w(unhex(e.data)); }
    };
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { reject(new Error("no stream within " + ms + " ms")); }, ms);
      source.onopen = function () { clearTimeout(timer); resolve("sse"); };
    });
  }

  // Socket.IO's long-polling, the fallback of the best-known peer (benchmarks/peers.py).
  // `text`: the bytes go as their hex digits (Socket.IO's polling sends binary as base64
  // through a Blob, several times slower than a string: the text row is its best case).
  function socketIO(url, ms, text) {
    var socket = io(url, { transports: ["polling"], forceNew: true, reconnection: false });
    ws = {
      send: function (payload) { socket.send(text ? hex(payload) : payload); },
      close: function () { socket.close(); },
    };
    socket.on("message", function (data) {
      var w = waiting; waiting = null;
      if (w) { w(typeof data === "string" ? unhex(data) : data); }
    });
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { reject(new Error("no connect within " + ms + " ms")); }, ms);
      socket.on("connect", function () { clearTimeout(timer); resolve("socketio"); });
      socket.on("connect_error", function (e) { clearTimeout(timer); reject(new Error("connect_error: " + e.message)); });
    });
  }

  window.altwsBench = {
    open: function (url, mode, ms) {
      if (mode === "fetch") { ws = { fetch: url, close: function () {} }; return Promise.resolve("fetch"); }
      if (mode === "sse") { return rawSSE(url, ms || 10000); }
      if (mode === "socketio" || mode === "socketio-text") {
        return socketIO(url, ms || 10000, mode === "socketio-text");
      }
      // "emulation": the browser's shared session (wire version 2, the default: held by the
      // tab); "emulation-worker": the same held by a SharedWorker ({share: "worker"});
      // "emulation-v1": one stream per socket ({share: false}, version 1)
      ws = mode === "websocket" ? new WebSocket(url)
        : mode === "emulation-v1" ? new AltWebSocket(url, true, [], { share: false })
        : mode === "emulation-worker" ? new AltWebSocket(url, true, [], { share: "worker" })
        : new AltWebSocket(url, mode === "emulation");
      ws.binaryType = "arraybuffer";
      ws.onmessage = function (e) {
        var w = waiting; waiting = null;
        if (w) { w(e.data); }
      };
      var socket = ws;
      return opened(ws, ms || 10000).then(function () {
        socket.onclose = null;
        return socket.transport || "websocket";
      });
    },
    run: async function (rounds, size, ms) {
      var payload = new Uint8Array(size);
      var samples = [];
      var started = performance.now();
      for (var i = 0; i < rounds; i++) {
        crypto.getRandomValues(payload);
        var timer = null, echoed = null;
        if (!ws.fetch) { // the guard's timer is set before the clock starts: it is the bench's
          echoed = new Promise(function (resolve, reject) { // cost, not the socket's (the
            waiting = resolve;                               // fetch arm has none)
            timer = setTimeout(function () { reject(new Error("no echo within " + ms + " ms")); }, ms);
          });
        }
        var before = performance.now();
        var answer;
        if (ws.fetch) {
          answer = await fetch(ws.fetch, { method: "POST", body: payload })
            .then(function (r) { return r.arrayBuffer(); });
        } else {
          ws.send(payload);
          answer = await echoed;
        }
        samples.push(performance.now() - before);
        clearTimeout(timer);
        if (!same(new Uint8Array(answer), payload)) { throw new Error("the echo differs"); }
      }
      return { total: performance.now() - started, samples: samples };
    },
    close: function () {
      if (ws) { ws.close(1000); ws = null; }
    },
  };
})();
