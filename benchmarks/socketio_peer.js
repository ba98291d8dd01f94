// A Socket.IO 4 echo server, the peer measured beside the emulation by `altws bench --local`
// (benchmarks/peers.py starts it with Node and the npm package `socket.io`).
//
//   node socketio_peer.js NODE_MODULES_DIR
//
// On 127.0.0.1, a free port: `GET /` is a blank page of this origin (cross-origin isolated,
// as the lab's pages, so performance.now() resolves 5 µs there), the client is Socket.IO's
// own `/socket.io/socket.io.min.js`, and every `message` a socket sends comes back to it
// (`socket.send(data)` → `socket.send(data)`). It prints "socket.io echo on http://HOST:PORT/"
// once it listens, and stops on SIGTERM.
"use strict";

const path = require("path");
const http = require("http");

const modules = process.argv[2] || path.join(__dirname, "node_modules");
const { Server } = require(path.join(modules, "socket.io"));

const PAGE = "<!doctype html><meta charset=utf-8><title>socket.io peer</title>";
const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && (req.url === "/" || req.url.startsWith("/?"))) {
    res.writeHead(200, {
      "Content-Type": "text/html; charset=utf-8",
      "Content-Length": Buffer.byteLength(PAGE),
      "Cross-Origin-Opener-Policy": "same-origin",
      "Cross-Origin-Embedder-Policy": "require-corp",
    });
    res.end(PAGE);
    return;
  }
  if (req.url.startsWith("/socket.io/")) { return; } // Socket.IO's own handler answers
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("not found");
});

// The defaults, but for the one the page needs: the client script from this origin.
const io = new Server(httpServer, { serveClient: true });
io.on("connection", (socket) => {
  socket.on("message", (data) => { socket.send(data); });
});

httpServer.listen(0, "127.0.0.1", () => {
  const { port } = httpServer.address();
  console.log(`socket.io echo on http://127.0.0.1:${port}/`);
});

process.on("SIGTERM", () => { io.close(); httpServer.close(); process.exit(0); });
