/* The code of chat.html and echo.html (no inline scripts: the pages run under
 * Content-Security-Policy: default-src 'self').
 *
 * Query string: ?url=<app base URL, e.g. /chat>&transport=auto|emulation|native (default auto).
 * Text from the network is only ever put in the page with textContent, never as HTML.
 */
(function () {
  "use strict";

  var params = new URLSearchParams(location.search);
  var page = document.body.getAttribute("data-page");
  var base = params.get("url") || "/" + page;
  var transport = params.get("transport") || "auto";
  if (["auto", "emulation", "native"].indexOf(transport) < 0) { transport = "auto"; }
  var MODES = { auto: "auto", emulation: true, native: false };

  var log = document.getElementById("log");
  var status = document.getElementById("status");
  var form = document.getElementById("form");
  var text = document.getElementById("text");
  var sendButton = document.getElementById("send");
  var select = document.getElementById("transport");
  var socket = null;
  var joinedAt = 0;

  function element(tag, className, content) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (content !== undefined) { node.textContent = content; }
    return node;
  }

  function add(item) {
    var atBottom = log.parentNode.scrollHeight - log.parentNode.scrollTop -
      log.parentNode.clientHeight < 40;
    log.appendChild(item);
    if (atBottom) { item.scrollIntoView({ block: "end" }); }
    return item;
  }

  function notice(message) { return add(element("li", "notice", message)); }

  function setStatus(state, label) {
    status.setAttribute("data-state", state);
    status.textContent = label;
  }

  function enable(on) {
    text.disabled = !on;
    sendButton.disabled = !on;
    Array.prototype.forEach.call(document.querySelectorAll("[data-needs-open]"), function (b) {
      b.disabled = !on;
    });
  }

  var current = null;

  function connect(handlers) {
    current = handlers;
    if (socket) { socket.onclose = socket.onerror = socket.onmessage = socket.onopen = null; }
    setStatus("connecting", "connecting…");
    enable(false);
    var ws;
    try {
      ws = new AltWebSocket(new URL(base, location.href).href, MODES[transport]);
    } catch (e) {
      setStatus("closed", "bad URL");
      notice(e.name + ": " + e.message);
      return;
    }
    socket = ws;
    window.altSocket = ws; // for the curious (and for the tests)
    ws.binaryType = "arraybuffer";
    ws.onopen = function () {
      joinedAt = Date.now();
      setStatus("open", ws.transport === "native" ? "native WebSocket" : "emulation (SSE + POST)");
      status.setAttribute("data-transport", ws.transport);
      enable(true);
      text.focus();
      if (handlers.open) { handlers.open(ws); }
    };
    ws.onmessage = function (event) { handlers.message(event.data, ws); };
    ws.onclose = function (event) {
      setStatus("closed", "closed (" + event.code + ")");
      enable(false);
      notice("connection closed: " + event.code + (event.reason ? " " + event.reason : "") +
        (event.wasClean ? "" : ", not cleanly"));
    };
  }

  // --- chat ---------------------------------------------------------------------------------

  function chat() {
    var nameInput = document.getElementById("name");
    var stored = "";
    try { stored = localStorage.getItem("altws-chat-name") || ""; } catch (e) { /* private */ }
    nameInput.value = stored || "guest" + Math.floor(Math.random() * 900 + 100);
    nameInput.addEventListener("change", function () {
      try { localStorage.setItem("altws-chat-name", nameInput.value); } catch (e) { /* private */ }
    });
    var mine = {};

    function show(data) {
      var item = { name: "", text: String(data), time: 0, tag: "" };
      try {
        var parsed = JSON.parse(data);
        if (parsed && typeof parsed === "object" && typeof parsed.text === "string") {
          item.name = typeof parsed.name === "string" ? parsed.name : "";
          item.text = parsed.text;
          item.time = typeof parsed.time === "number" ? parsed.time : 0;
          item.tag = typeof parsed.tag === "string" ? parsed.tag : "";
        }
      } catch (e) { /* plain text from another client: shown as is */ }
      var li = element("li", "message");
      var who = element("span", "who", item.name || "anonymous");
      if (item.time) {
        who.appendChild(element("time", "when",
          new Date(item.time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
      }
      li.appendChild(who);
      li.appendChild(element("span", "body", item.text));
      if (item.tag && mine[item.tag]) { li.classList.add("mine"); delete mine[item.tag]; }
      if (item.time && item.time < joinedAt) { li.classList.add("history"); }
      add(li);
    }

    connect({
      open: function () { notice("joined the chat"); },
      message: function (data) {
        if (typeof data === "string") { show(data); }
      }
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var value = text.value;
      if (!value.trim() || !socket || socket.readyState !== AltWebSocket.OPEN) { return; }
      var tag = Math.random().toString(36).slice(2);
      mine[tag] = true;
      socket.send(JSON.stringify({ name: nameInput.value.trim().slice(0, 24), text: value,
        time: Date.now(), tag: tag }));
      text.value = "";
      text.focus();
    });
  }

  // --- echo ---------------------------------------------------------------------------------

  function echo() {
    var binary = document.getElementById("binary");
    var bench = document.getElementById("bench");
    var rounds = document.getElementById("rounds");
    binary.setAttribute("data-needs-open", "");
    bench.setAttribute("data-needs-open", "");
    var benchmark = null;

    function hex(buffer) {
      return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
        return (b < 16 ? "0" : "") + b.toString(16);
      }).join(" ");
    }

    function run(count) {
      var payload = new Uint8Array(8);
      benchmark = { left: count, count: count, start: performance.now() };
      bench.disabled = true;
      benchmark.next = function () {
        crypto.getRandomValues(payload);
        socket.send(payload);
      };
      benchmark.next();
    }

    connect({
      message: function (data) {
        if (benchmark) {
          if (--benchmark.left > 0) { return benchmark.next(); }
          var ms = performance.now() - benchmark.start;
          notice(benchmark.count + " round trips over " + socket.transport + ": " +
            ms.toFixed(0) + " ms (" + (ms / benchmark.count).toFixed(2) + " ms each)");
          benchmark = null;
          bench.disabled = false;
          return;
        }
        var li = element("li", "message");
        if (typeof data === "string") {
          li.appendChild(element("span", "who", "echo"));
          li.appendChild(element("span", "body", data));
        } else {
          li.appendChild(element("span", "who", "echo · " + data.byteLength + " bytes"));
          li.appendChild(element("span", "body bytes", hex(data)));
        }
        add(li);
      }
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!socket || socket.readyState !== AltWebSocket.OPEN || benchmark) { return; }
      socket.send(text.value);
      text.value = "";
    });
    binary.addEventListener("click", function () {
      if (socket && socket.readyState === AltWebSocket.OPEN && !benchmark) {
        socket.send(crypto.getRandomValues(new Uint8Array(8)));
      }
    });
    bench.addEventListener("click", function () {
      var count = Math.max(1, Math.min(100000, parseInt(rounds.value, 10) || 100));
      if (socket && socket.readyState === AltWebSocket.OPEN && !benchmark) { run(count); }
    });
  }

  // --- both ---------------------------------------------------------------------------------

  select.value = transport;
  document.getElementById("transport-form").addEventListener("change", function () {
    params.set("transport", select.value);
    params.set("url", base);
    location.search = params.toString();
  });
  document.getElementById("reconnect").addEventListener("click", function () {
    if (socket && socket.readyState < AltWebSocket.CLOSING) { socket.close(); }
    if (page === "chat") { log.textContent = ""; }
    if (current) { connect(current); }
  });

  if (page === "chat") {
    chat();
  } else {
    echo();
  }
})();
