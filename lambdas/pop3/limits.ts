/**
 * Every bound the POP3 client enforces, in one place. A hostile or broken server can only make
 * the client fail with a specific code, never make it buffer without limit.
 */

/**
 * Longest status line or listing line (CAPA, LIST, UIDL), in octets, excluding CRLF. RFC 2449 §4
 * caps responses at 512 octets including CRLF, but real servers exceed it (long greetings,
 * IMPLEMENTATION strings), so we are tolerant up to 64 KiB and fail with LINE_TOO_LONG beyond.
 */
export const MAX_LINE_BYTES = 64 * 1024;

/** Most lines accepted in one multi-line text response (CAPA, LIST, UIDL); ~100 MB of strings. */
export const MAX_LISTING_LINES = 2_000_000;

/**
 * Longest command line, in octets including CRLF, that may carry a SASL initial response
 * (RFC 5034 §4, which inherits the 255-octet command limit of RFC 2449 §4).
 */
export const MAX_AUTH_INITIAL_LINE = 255;

/** Challenge/response round trips allowed in one SASL exchange before we cancel it. */
export const MAX_SASL_STEPS = 8;

/** Default idle timeout while waiting on the server for a command's response, in ms. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Default budget for TCP connect plus (implicit) TLS handshake, in ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

/** Default number of commands written ahead of their responses when PIPELINING is offered. */
export const DEFAULT_PIPELINE_WINDOW = 16;

/** Highest accepted pipeline window; more buys nothing and risks server-side limits. */
export const MAX_PIPELINE_WINDOW = 256;

/** Buffered message bytes per RETR/TOP stream before the socket is paused, in octets. */
export const BODY_HIGH_WATER_MARK = 64 * 1024;

/** Longest server text quoted in an error message, in characters. */
export const MAX_ERROR_TEXT = 300;
