/** Public API of the POP3 client. */
export { emptyCapabilities } from "./capabilities.ts";
export { Pop3Client } from "./client.ts";
export { parseCapabilities } from "./commands/capa.ts";
export { isTransient, isValidUidl, Pop3ServerError, parseResponseCode } from "./errors.ts";
export * as limits from "./limits.ts";
export type {
  AuthMethod,
  Capabilities,
  ListEntry,
  Pop3Credentials,
  Pop3Options,
  TlsMode,
  TraceEvent,
  UidlEntry,
} from "./types.ts";
