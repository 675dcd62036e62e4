/**
 * TLS for the client: a `dial` function for `ClientOptions` that opens
 * TCP (abortable) and then TLS over it, finishing the handshake inside the dial
 * so certificate and protocol mismatches surface as connect errors, which the
 * client reports as final `tls_error`s rather than retrying.
 *
 * @module
 */

import type { Dialer } from "./types.ts";

/** Options for {@link tlsDialer}. */
export interface TlsDialOptions {
  /** PEM CA certificates to trust in addition to the default roots (`--ca FILE`). */
  caCerts?: string[];
}

/**
 * Returns a `dial` that connects with TLS. The server's certificate must name
 * the host the client connects to (a DNS name, or the IP address in its
 * subjectAltName) and chain to a trusted CA.
 *
 * @example
 * ```ts
 * const ca = await Deno.readTextFile("ca.pem");
 * const r = await runClient({ hostname: "localhost", port: 8443, dial: tlsDialer({ caCerts: [ca] }) });
 * ```
 */
export function tlsDialer(
  opts: TlsDialOptions = {},
): Dialer {
  return async ({ hostname, port, signal }) => {
    const tcp = await Deno.connect({ hostname, port, signal });
    const conn = await Deno.startTls(tcp, {
      hostname,
      ...(opts.caCerts ? { caCerts: opts.caCerts } : {}),
    });
    const onAbort = () => {
      try {
        conn.close();
      } catch { /* closed */ }
    };
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await conn.handshake();
    } catch (err) {
      onAbort();
      throw err;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    return conn;
  };
}
