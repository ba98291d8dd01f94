/*! AltWebSocket as an ES module: `import { AltWebSocket } from "./altwebsocket.mjs"`.
 * The code lives in altwebsocket.js (one copy for <script> and modules); importing it for its
 * side effect defines the globals, which this file re-exports. */
import "./altwebsocket.js";

export const AltWebSocket = globalThis.AltWebSocket;
export const EventSocket = globalThis.EventSocket;
export default AltWebSocket;
