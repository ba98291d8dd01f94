/**
 * AltWebSocket: the W3C/WHATWG WebSocket API over native WebSocket or an emulation made of
 * Server-Sent Events (downstream) and HTTP POST (upstream). See docs/client.md.
 *
 * Classic script: `<script src="altwebsocket.js">` defines the globals below.
 * ES module: `import { AltWebSocket } from "./altwebsocket.mjs"` (or default import).
 */

/** How the socket is carried: `true` / "emulation", `false` / "native", or "auto". */
export type AltWebSocketMode = boolean | "auto" | "emulation" | "native";

/**
 * How emulated sockets share the browser's one session (protocol version 2): `true` or
 * "auto" picks the best the browser has (a tab elected with Web Locks, else a SharedWorker,
 * else the page); "tabs", "worker" or "page" asks for one ("worker" falls back to "tabs",
 * "tabs" to "page", when the browser lacks it); `false` gives each socket its own stream
 * (protocol version 1).
 */
export type AltWebSocketShare = boolean | "auto" | "tabs" | "worker" | "page";

/** The transport in use once decided ("" while an auto-mode socket is still choosing). */
export type AltWebSocketTransport = "native" | "emulation" | "";

/** Tuning knobs (all optional; defaults in `AltWebSocket.defaults`). Times in milliseconds. */
export interface AltWebSocketOptions {
  /** Auto mode: how long the native WebSocket gets to open before the emulation is used. */
  nativeTimeout?: number;
  /** How long to wait for `B/info`. */
  infoTimeout?: number;
  /** Emulation: how long the stream or the uplink may stay down before error + close 1006. */
  reconnectTimeout?: number;
  /** Emulation: how long to wait for the close event after `close()`. */
  closeTimeout?: number;
  /** Emulation: most messages in one POST. */
  maxBatch?: number;
  /** Emulation: about how many bytes one POST carries at most. */
  batchBytes?: number;
  /**
   * Emulation: share one session and one stream with every other emulated socket of the
   * browser on the same server (default `true`; used when `B/info` lists version 2).
   */
  share?: AltWebSocketShare;
  /**
   * The URL of `altwebsocket.js` for the SharedWorker (same origin as the page); "" (the
   * default) means the URL the script was loaded from.
   */
  workerURL?: string;
}

export interface AltWebSocketEventMap {
  open: Event;
  message: MessageEvent;
  error: Event;
  close: CloseEvent;
}

export declare class AltWebSocket extends EventTarget {
  /**
   * @param url the app base URL (`http(s)://host/…/chat`) or a `ws(s)://` URL.
   * @param emulate `true` emulation, `false` native, omitted or "auto" to choose; a string
   *   or array in this place is taken as `protocols` (the native two-argument form, auto).
   * @param protocols subprotocols, as for `WebSocket`.
   * @throws DOMException SyntaxError for a bad URL, scheme, fragment or subprotocol list.
   */
  constructor(url: string | URL, emulate?: AltWebSocketMode, protocols?: string | string[],
              options?: AltWebSocketOptions);
  constructor(url: string | URL, protocols?: string | string[]);

  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  static readonly defaults: Required<AltWebSocketOptions>;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;

  /** The URL, with http(s) mapped to ws(s) as the WebSocket standard does. */
  readonly url: string;
  readonly readyState: 0 | 1 | 2 | 3;
  readonly bufferedAmount: number;
  readonly protocol: string;
  readonly extensions: string;
  /** Not in the standard: which transport carries this socket. */
  readonly transport: AltWebSocketTransport;
  binaryType: BinaryType;

  onopen: ((this: AltWebSocket, ev: Event) => any) | null;
  onmessage: ((this: AltWebSocket, ev: MessageEvent) => any) | null;
  onerror: ((this: AltWebSocket, ev: Event) => any) | null;
  onclose: ((this: AltWebSocket, ev: CloseEvent) => any) | null;

  /** @throws DOMException InvalidStateError while CONNECTING. */
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void;
  /**
   * @throws DOMException InvalidAccessError for a code other than 1000 or 3000–4999;
   *   SyntaxError for a reason over 123 UTF-8 bytes.
   */
  close(code?: number, reason?: string): void;

  addEventListener<K extends keyof AltWebSocketEventMap>(
    type: K, listener: (this: AltWebSocket, ev: AltWebSocketEventMap[K]) => any,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject,
                   options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof AltWebSocketEventMap>(
    type: K, listener: (this: AltWebSocket, ev: AltWebSocketEventMap[K]) => any,
    options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject,
                      options?: boolean | EventListenerOptions): void;
}

/** The emulation alone: `new EventSocket(url, protocols)` is `new AltWebSocket(url, true, protocols)`. */
export declare class EventSocket extends AltWebSocket {
  constructor(url: string | URL, protocols?: string | string[], options?: AltWebSocketOptions);
}

export default AltWebSocket;

declare global {
  // eslint-disable-next-line no-var
  var AltWebSocket: typeof import("./altwebsocket").AltWebSocket;
  // eslint-disable-next-line no-var
  var EventSocket: typeof import("./altwebsocket").EventSocket;
}
