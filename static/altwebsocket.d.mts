// Types of altwebsocket.mjs: the same declarations as altwebsocket.d.ts.
export * from "./altwebsocket.js";
export { default } from "./altwebsocket.js";
