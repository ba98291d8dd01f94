/*! AltWebSocket as an ES module: `import { AltWebSocket } from "./altwebsocket.mjs"`.
 * The code lives in altwebsocket.js (one copy for <script> and modules); importing it for its
 * side effect defines the globals, which this file re-exports. */
import "./altwebsocket.js";

// A module has no document.currentScript: tell the client where its SharedWorker script is.
if (!globalThis.AltWebSocket.defaults.workerURL) {
  globalThis.AltWebSocket.defaults.workerURL = new URL("./altwebsocket.js", import.meta.url).href;
}

export const AltWebSocket = globalThis.AltWebSocket;
export const EventSocket = globalThis.EventSocket;
export default AltWebSocket;
