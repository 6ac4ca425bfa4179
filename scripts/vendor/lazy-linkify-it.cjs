"use strict";
/**
 * linkify-it, built on first use instead of when mailparser loads (issue 14). Bundled in place of
 * `linkify-it` for mailparser by scripts/build.mjs (the CLI's vendored mailparser and the Lambda
 * bundles).
 *
 * mailparser builds one linkifier at load: the constructor and six configuration calls, of which
 * the constructor and five compile linkify-it's patterns: about 15 ms of an incremental poll's
 * start-up. It uses the linkifier only for text links, which mail-ingest never asks for
 * (`skipTextLinks`). This stand-in records the configuration calls (`add`, `set`, `tlds`) and
 * replays them, in order, on the real instance the first time anything else is read from it;
 * from then on every property is the real one's. linkify-it itself is required only then.
 */
const CONFIGURE = new Set(["add", "set", "tlds"]);

module.exports = function lazyLinkifyIt(schemas, options) {
  const calls = [];
  let real;
  const materialize = () => {
    if (real === undefined) {
      const LinkifyIt = require("linkify-it");
      real = new LinkifyIt(schemas, options);
      for (const [name, args] of calls) real[name](...args);
      calls.length = 0;
    }
    return real;
  };
  const proxy = new Proxy(
    {},
    {
      get(_target, name) {
        if (real === undefined && CONFIGURE.has(name)) {
          return (...args) => {
            calls.push([name, args]);
            return proxy;
          };
        }
        const instance = materialize();
        const value = instance[name];
        return typeof value === "function" ? value.bind(instance) : value;
      },
      set(_target, name, value) {
        materialize()[name] = value;
        return true;
      },
      has(_target, name) {
        return name in materialize();
      },
    },
  );
  return proxy;
};
