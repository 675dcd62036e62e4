/**
 * A self-signed certificate for TLS tests, made at run time with `openssl`
 * (no key material is committed). Without openssl the tests fail with a
 * message saying so: they do not skip.
 *
 * @module
 */

import { type ProcessOutput, runToEnd } from "../internal/spawn.ts";

/** Paths and PEM text of a certificate for `localhost` and 127.0.0.1, and its key. */
export interface TestCert extends AsyncDisposable {
  dir: string;
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

/**
 * Creates a P-256 self-signed certificate (valid one day, not a CA, with
 * subjectAltName DNS:localhost and IP:127.0.0.1) in a new temporary directory,
 * removed on dispose.
 *
 * @throws {Error} when openssl is missing or fails, saying how to get it
 */
export async function makeTestCert(): Promise<TestCert> {
  const dir = await Deno.makeTempDir({ prefix: "seqstream-tls-" });
  const certFile = `${dir}/cert.pem`;
  const keyFile = `${dir}/key.pem`;
  let out: ProcessOutput;
  try {
    out = await runToEnd("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      // rustls refuses a CA certificate as a server's own certificate.
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-days",
      "1",
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ]);
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        "The TLS tests need the openssl command to make a test certificate, and it is not on PATH: " +
          "install it (Debian: apt-get install openssl)",
        { cause: err },
      );
    }
    throw err;
  }
  if (out.code !== 0) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(
      `openssl could not make a test certificate:\n${out.stderr}`,
    );
  }
  return {
    dir,
    certFile,
    keyFile,
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}
