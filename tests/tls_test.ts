/**
 * TLS end to end, with a certificate made at run time: a TLS client passes
 * against a TLS server, and every mismatch (plain against TLS, TLS against
 * plain, an untrusted certificate) fails at once with a message that says
 * what to change, instead of retrying until the connect timeout.
 */

import { runClient } from "../client/client.ts";
import { tlsDialer } from "../client/tls.ts";
import { assert_, assertEquals } from "./_assert.ts";
import { makeTestCert } from "./_certs.ts";
import { testServer } from "./_fixtures.ts";
import { freePort, spawnDeno } from "./_process.ts";

/**
 * "Fast" against {@link SLOW}: a client that waited for a handshake or
 * retried would take 30 s; a real-time ceiling far from both, so that a
 * loaded host does not fail the test.
 */
const FAST_MS = 10_000;
const SLOW = { handshakeTimeoutMs: 30_000, connectGiveUpMs: 30_000 };

Deno.test("TLS client passes against a TLS server, by host name and by IP address", async () => {
  await using cert = await makeTestCert();
  await using server = await testServer({
    tls: { cert: cert.cert, key: cert.key },
    intervalMs: 1,
    seed: 7,
  });
  const dial = tlsDialer({ caCerts: [cert.cert] });
  for (const hostname of ["localhost", "127.0.0.1"]) {
    const r = await runClient({
      hostname,
      port: server.addr.port,
      count: 200,
      dial,
    });
    assertEquals(r.result, "PASS", `${hostname}: ${JSON.stringify(r)}`);
    assertEquals(r.checksum, r.serverChecksum);
  }
  await using plain = await testServer({ intervalMs: 0, seed: 7 });
  const id = "11111111-2222-4333-8444-555555555555";
  const overTls = await runClient({
    port: server.addr.port,
    count: 300,
    id,
    dial,
  });
  const overTcp = await runClient({ port: plain.addr.port, count: 300, id });
  assertEquals([overTls.result, overTls.sum, overTls.checksum], [
    "PASS",
    overTcp.sum,
    overTcp.checksum,
  ]);
});

Deno.test("plain client against a TLS server fails fast with tls_mismatch, not a hang", async () => {
  await using cert = await makeTestCert();
  await using server = await testServer({
    tls: { cert: cert.cert, key: cert.key },
  });
  const t0 = Date.now();
  const r = await runClient({ port: server.addr.port, count: 10, ...SLOW });
  assert_(Date.now() - t0 < FAST_MS, `took ${Date.now() - t0}ms`);
  assertEquals(r.result, "ERROR");
  assertEquals(r.error?.code, "tls_mismatch", JSON.stringify(r));
  assert_(
    /answered with TLS; connect with TLS/.test(r.error!.message),
    r.error!.message,
  );
  assertEquals(r.reconnects, 0);
});

Deno.test("TLS client against a plain server fails fast with tls_error naming TLS", async () => {
  await using server = await testServer();
  const t0 = Date.now();
  const r = await runClient({
    port: server.addr.port,
    count: 10,
    dial: tlsDialer(),
    ...SLOW,
  });
  assert_(Date.now() - t0 < FAST_MS, `took ${Date.now() - t0}ms`);
  assertEquals(r.error?.code, "tls_error", JSON.stringify(r));
  assert_(
    /TLS handshake with 127\.0\.0\.1:\d+ failed .*serving TLS/.test(
      r.error!.message,
    ),
    r.error!.message,
  );
});

Deno.test("TLS client that does not trust the server's certificate fails fast, pointing at --ca", async () => {
  await using cert = await makeTestCert();
  await using server = await testServer({
    tls: { cert: cert.cert, key: cert.key },
  });
  const t0 = Date.now();
  const r = await runClient({
    hostname: "localhost",
    port: server.addr.port,
    count: 10,
    dial: tlsDialer(),
    ...SLOW,
  });
  assert_(Date.now() - t0 < FAST_MS, `took ${Date.now() - t0}ms`);
  assertEquals(r.error?.code, "tls_error", JSON.stringify(r));
  assert_(
    /certificate .*rejected.*--ca FILE/.test(r.error!.message),
    r.error!.message,
  );
});

Deno.test("CLIs: server --tls-cert/--tls-key and client --tls --ca pass; a plain client gets tls_mismatch", async () => {
  await using cert = await makeTestCert();
  const port = freePort();
  await using server = spawnDeno("server.ts", [
    "--port",
    String(port),
    "--interval",
    "1ms",
    "--tls-cert",
    cert.certFile,
    "--tls-key",
    cert.keyFile,
  ]);
  assert_((await server.waitForLine(/server listening/)).includes("tls=true"));
  await using tls = spawnDeno("client.ts", [
    "--host",
    "localhost",
    "--port",
    String(port),
    "--count",
    "100",
    "--tls",
    "--ca",
    cert.certFile,
    "--json",
  ]);
  const ok = await tls.done();
  assertEquals(ok.code, 0, tls.stderr.join("\n"));
  assertEquals(JSON.parse(ok.stdout).result, "PASS");
  await using plain = spawnDeno("client.ts", [
    "--port",
    String(port),
    "--count",
    "100",
    "--json",
  ]);
  const bad = await plain.done();
  assertEquals(bad.code, 2);
  assertEquals(JSON.parse(bad.stdout).error.code, "tls_mismatch");
  await using noCa = spawnDeno("client.ts", [
    "--port",
    String(port),
    "--count",
    "1",
    "--tls",
    "--json",
    "--ca",
    "/nope",
  ]);
  const missing = await noCa.done();
  assertEquals(missing.code, 2);
  assertEquals(JSON.parse(missing.stdout).error.code, "tls_error");
  assert_(
    noCa.stderr.some((l) => l.includes("cannot read --ca /nope")),
    noCa.stderr.join("\n"),
  );
});

Deno.test("server CLI exits 1 with one line for a missing, non-PEM or mismatched certificate and key", async () => {
  await using cert = await makeTestCert();
  await using other = await makeTestCert();
  await Deno.writeTextFile(`${cert.dir}/junk.pem`, "not a certificate\n");
  const cases: [string[], RegExp][] = [
    [
      ["--tls-cert", `${cert.dir}/missing.pem`, "--tls-key", cert.keyFile],
      /Cannot read --tls-cert .*missing\.pem/,
    ],
    [
      ["--tls-cert", `${cert.dir}/junk.pem`, "--tls-key", cert.keyFile],
      /junk\.pem is not a PEM file/,
    ],
    [
      ["--tls-cert", cert.keyFile, "--tls-key", cert.certFile],
      /is not a PEM file/,
    ],
    [
      ["--tls-cert", cert.certFile, "--tls-key", other.keyFile],
      /Cannot serve TLS with --tls-cert .*KeyMismatch/,
    ],
  ];
  for (const [args, re] of cases) {
    await using p = spawnDeno("server.ts", ["--port", "0", ...args]);
    const { code, stdout } = await p.done();
    assertEquals([code, stdout], [1, ""], p.stderr.join("\n"));
    assertEquals(
      p.stderr.filter((l) => l !== "").length,
      1,
      p.stderr.join("\n"),
    );
    assert_(re.test(p.stderr[0]!), p.stderr[0]);
  }
});

Deno.test("TLS client connecting by a name the certificate does not list fails fast, saying so", async () => {
  await using cert = await makeTestCert();
  await using server = await testServer({
    hostname: "0.0.0.0",
    tls: { cert: cert.cert, key: cert.key },
  });
  const r = await runClient({
    hostname: "127.0.0.2", // loopback, but not in the certificate's subjectAltName
    port: server.addr.port,
    count: 10,
    dial: tlsDialer({ caCerts: [cert.cert] }),
  });
  assertEquals(r.error?.code, "tls_error", JSON.stringify(r));
  assert_(
    /does not name that host .*127\.0\.0\.2/.test(r.error!.message),
    r.error!.message,
  );
});
