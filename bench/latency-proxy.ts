/**
 * A loopback TCP relay that delays every chunk by half the round-trip time in each direction, so
 * the bench can show what a remote POP3 server's latency costs each client (`--latency MS`).
 * Order is preserved: every chunk waits the same delay. It has no backpressure of its own, which
 * is fine for a bench whose messages fit in memory.
 */
import net from "node:net";

export interface LatencyProxy {
  readonly port: number;
  close(): Promise<void>;
}

export async function startLatencyProxy(
  target: { readonly host: string; readonly port: number },
  rttMs: number,
): Promise<LatencyProxy> {
  const oneWay = rttMs / 2;
  const sockets = new Set<net.Socket>();
  const relay = (from: net.Socket, to: net.Socket) => {
    from.on("data", (chunk: Buffer) => {
      setTimeout(() => to.write(chunk), oneWay);
    });
    from.on("end", () => setTimeout(() => to.end(), oneWay));
    from.on("error", () => to.destroy());
    from.on("close", () => sockets.delete(from));
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true);
      sockets.add(socket);
    }
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
