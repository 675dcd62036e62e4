import { assert_, assertEquals } from "../tests/_assert.ts";
import {
  denoListenProbe,
  failedListener,
  listenFailureMessage,
  type ListenTarget,
} from "./listen_failure.ts";

const client: ListenTarget = {
  portFlag: "port",
  hostFlag: "host",
  hostname: "127.0.0.1",
  port: 8080,
};
const metrics: ListenTarget = {
  portFlag: "metrics-port",
  hostFlag: "metrics-host",
  hostname: "127.0.0.1",
  port: 9090,
};
const inUse = new Deno.errors.AddrInUse("Address already in use (os error 98)");
const noAddr = new Deno.errors.AddrNotAvailable(
  "Cannot assign requested address (os error 99)",
);

Deno.test("listenFailureMessage names the flag and the value that failed, and why", () => {
  assertEquals(
    listenFailureMessage(inUse, metrics),
    "--metrics-port 9090 is already in use on 127.0.0.1: another process listens there; pick another port",
  );
  assertEquals(
    listenFailureMessage(inUse, client),
    "--port 8080 is already in use on 127.0.0.1: another process listens there; pick another port",
  );
  const m = listenFailureMessage(noAddr, { ...client, hostname: "192.0.2.1" });
  assert_(
    m !== undefined && m.startsWith(
      "--host 192.0.2.1: no interface of this machine has that address",
    ),
    m,
  );
  assert_(m.includes("os error 99"), m);
  assertEquals(
    listenFailureMessage(
      new Error(
        "failed to lookup address information: Name or service not known",
      ),
      { ...metrics, hostname: "nosuch.invalid" },
    ),
    "--metrics-host nosuch.invalid: cannot resolve that name (failed to lookup address information: Name or service not known)",
  );
  assertEquals(
    listenFailureMessage(new Error("TLS key mismatch"), client),
    undefined,
  );
});

Deno.test("failedListener blames the metrics port when the client address listens on its own", () => {
  const probed: ListenTarget[] = [];
  const free = (t: ListenTarget) => {
    probed.push(t);
    return undefined;
  };
  assertEquals(failedListener(inUse, client, metrics, free), metrics);
  assertEquals(probed, [client]);
  assertEquals(failedListener(inUse, client, metrics, () => inUse), client);
  // The client address fails, but not the same way: the metrics one failed.
  assertEquals(failedListener(inUse, client, metrics, () => noAddr), metrics);
  // No metrics port: nothing to probe.
  assertEquals(
    failedListener(inUse, client, undefined, () => {
      throw new Error("probed");
    }),
    client,
  );
});

Deno.test("denoListenProbe reports a port in use, and frees what it opened", () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const probe = denoListenProbe(false);
  assert_(probe({ ...client, port }) instanceof Deno.errors.AddrInUse);
  assertEquals(probe({ ...client, port: 0 }), undefined);
  assert_(
    probe({ ...client, hostname: "192.0.2.1", port: 0 }) instanceof
      Deno.errors.AddrNotAvailable,
  );
});
