/**
 * The project's POP3 test server in its own process, for machines without Dovecot. The bench
 * asks it over stdin to generate and add corpus messages, so the messages are made here and
 * never cross the pipe.
 */
import { createHash, randomBytes } from "node:crypto";
import { startPop3TestServer } from "../lambdas/demo/pop3-server.ts";
import { generateLargeMessage, largeMessageSize } from "../test/helpers/messages.ts";
import { serve } from "./child-rpc.ts";
import { corpusMessages } from "./corpus.ts";
import { USERS } from "./maildrop.ts";

const password = randomBytes(12).toString("hex");
const server = await startPop3TestServer({
  host: "127.0.0.1",
  users: Object.fromEntries(USERS.map((user) => [user, { password, messages: [] }])),
  pipelining: true,
});

const rpc = serve(
  {
    async deliver(args) {
      const user = String(args.user);
      let bytes = 0;
      const batch = [...corpusMessages(Number(args.from), Number(args.count))].map((data) => {
        bytes += data.byteLength;
        return { data };
      });
      server.addMessages(user, batch);
      return { messages: batch.length, bytes };
    },
    /**
     * The test server keeps messages in memory, so here (unlike Dovecot's Maildir) the big
     * message is held whole — in this server process, never in the client being measured.
     */
    async deliverLarge(args) {
      const totalBytes = Number(args.totalBytes);
      const attachments = Number(args.attachments);
      const data = Buffer.allocUnsafe(largeMessageSize(totalBytes, attachments));
      const hash = createHash("sha256");
      let at = 0;
      for await (const chunk of generateLargeMessage(totalBytes, attachments)) {
        const bytes = chunk as Buffer;
        bytes.copy(data, at);
        hash.update(bytes);
        at += bytes.byteLength;
      }
      server.addMessages(String(args.user), [{ data }]);
      return { bytes: at, sha256: hash.digest("hex") };
    },
  },
  () => server.close(),
);
rpc.ready({ host: server.host, port: server.port, password });
