/**
 * Why the server could not listen, in the words of its command line: which
 * flag, which value, and why (`--metrics-port 9090 is already in use`), not
 * the runtime's bare `Cannot assign requested address (os error 99)`.
 *
 * `startServer()` opens two listeners (the client port, then the metrics
 * port) and closes whatever it opened when one fails, so the error alone
 * does not say which. {@link failedListener} finds out by trying the client
 * address again on its own; {@link listenFailureMessage} is pure.
 *
 * @module
 */

/** One listener as the command line asked for it. */
export interface ListenTarget {
  /** The port's flag: `port` or `metrics-port`. */
  portFlag: string;
  /** The interface's flag: `host` or `metrics-host`. */
  hostFlag: string;
  hostname: string;
  port: number;
}

/** Tries to listen on `target` and closes at once: the error, or undefined when it could. */
export type ListenProbe = (target: ListenTarget) => unknown;

/** A probe with `Deno.listen` (with `reusePort` when the server uses it). */
export function denoListenProbe(reusePort: boolean): ListenProbe {
  return (t) => {
    try {
      Deno.listen({
        hostname: t.hostname,
        port: t.port,
        ...(reusePort ? { reusePort: true } : {}),
      } as Deno.TcpListenOptions).close();
      return undefined;
    } catch (err) {
      return err;
    }
  };
}

/** The error's kind as {@link listenFailureMessage} tells them apart. */
function kind(err: unknown): "in-use" | "no-address" | "no-name" | "other" {
  if (err instanceof Deno.errors.AddrInUse) return "in-use";
  if (err instanceof Deno.errors.AddrNotAvailable) return "no-address";
  if (/failed to lookup address|Name or service not known/i.test(msg(err))) {
    return "no-name";
  }
  return "other";
}

function msg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Which of `client` and `metrics` a listen error `err` from `startServer()`
 * came from: the client listener is opened first, so it is the client's when
 * the client address fails the same way on its own, else the metrics one's.
 */
export function failedListener(
  err: unknown,
  client: ListenTarget,
  metrics: ListenTarget | undefined,
  probe: ListenProbe,
): ListenTarget {
  if (metrics === undefined) return client;
  const again = probe(client);
  return again !== undefined && kind(again) === kind(err) ? client : metrics;
}

/**
 * One line naming the flag and saying why `target` could not be listened on,
 * or undefined when `err` is not a listen failure this knows.
 *
 * @example
 * ```ts
 * listenFailureMessage(new Deno.errors.AddrInUse("Address in use"), {
 *   portFlag: "metrics-port", hostFlag: "metrics-host", hostname: "127.0.0.1", port: 9090,
 * });
 * // "--metrics-port 9090 is already in use on 127.0.0.1: another process listens there; pick another port"
 * ```
 */
export function listenFailureMessage(
  err: unknown,
  target: ListenTarget,
): string | undefined {
  const { portFlag, hostFlag, hostname, port } = target;
  switch (kind(err)) {
    case "in-use":
      return `--${portFlag} ${port} is already in use on ${hostname}: another process listens there; pick another port`;
    case "no-address":
      return `--${hostFlag} ${hostname}: no interface of this machine has that address, so the server cannot listen on it (${
        msg(err)
      }); use an address of this machine, 127.0.0.1 or 0.0.0.0`;
    case "no-name":
      return `--${hostFlag} ${hostname}: cannot resolve that name (${
        msg(err)
      })`;
    case "other":
      return undefined;
  }
}
