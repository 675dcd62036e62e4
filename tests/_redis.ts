/**
 * A real `redis-server` for tests, started with `Deno.Command` on a free
 * loopback port and stopped (or crashed, paused, restarted) on demand.
 *
 * Redis tests never pass by skipping silently: when `redis-server` is not
 * installed, {@link startRedis} throws with a message saying how to fix it,
 * unless `SEQSTREAM_SKIP_REDIS=1` is set, in which case
 * {@link redisIgnoreReason} returns the reason and the tests register as
 * ignored with that reason in their names.
 *
 * @module
 */

/** The environment variable that turns missing-`redis-server` failures into ignored tests. */
export const SKIP_REDIS_ENV = "SEQSTREAM_SKIP_REDIS";

const MISSING =
  "redis-server is not installed (apt-get install -y redis-server); " +
  `set ${SKIP_REDIS_ENV}=1 to register the Redis tests as ignored instead`;

/** A running (or stopped) `redis-server` owned by a test. */
export interface RedisServer extends AsyncDisposable {
  /** `redis://127.0.0.1:PORT`. Stays the same across {@link stop} and {@link start}. */
  readonly url: string;
  /** The loopback port the server listens on. */
  readonly port: number;
  /**
   * Kills the server with SIGKILL, as a crash would: clients see their
   * connections drop. Nothing is kept (no RDB, no AOF). Idempotent.
   */
  stop(): Promise<void>;
  /** Starts the server again on the same port, empty, and waits until it answers PING. */
  start(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing answers, like a black-holed network. */
  pause(): void;
  /** SIGCONT after {@link pause}. */
  resume(): void;
}

let installed: Promise<boolean> | undefined;

/** Whether `redis-server` can be run here. Probed once per process. */
export function redisInstalled(): Promise<boolean> {
  installed ??= (async () => {
    try {
      const out = await new Deno.Command("redis-server", {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      }).output();
      return out.success;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  })();
  return installed;
}

/**
 * Why the Redis tests should be registered as ignored, or `undefined` when
 * they should run. They run (and fail loudly) when `redis-server` is missing
 * unless {@link SKIP_REDIS_ENV} is `1`.
 */
export async function redisIgnoreReason(): Promise<string | undefined> {
  if (await redisInstalled()) return undefined;
  if (Deno.env.get(SKIP_REDIS_ENV) === "1") {
    return `redis-server not installed and ${SKIP_REDIS_ENV}=1`;
  }
  return undefined;
}

/**
 * Starts `redis-server --port P --save "" --appendonly no` on a free loopback
 * port and waits until it answers PING.
 *
 * @throws {Error} when `redis-server` is not installed, or when it does not
 * come up within 10 s (the message carries its log).
 *
 * @example
 * ```ts
 * await using redis = await startRedis();
 * const store = await RedisStore.connect(redis.url);
 * ```
 */
export async function startRedis(): Promise<RedisServer> {
  if (!(await redisInstalled())) throw new Error(MISSING);
  let lastError: unknown;
  // A port found free can be taken before redis-server binds it: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const server = new Server(freePort());
    try {
      await server.start();
      return server;
    } catch (e) {
      lastError = e;
      await server.stop();
    }
  }
  throw new Error("Cannot start redis-server", { cause: lastError });
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

class Server implements RedisServer {
  readonly url: string;
  readonly port: number;
  #child: Deno.ChildProcess | undefined;
  #log: Promise<string> = Promise.resolve("");

  constructor(port: number) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    if (this.#child) return;
    const child = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    // Drain both pipes until the process exits, so a chatty server never blocks
    // and the log is at hand when it fails to start.
    this.#log = Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]).then(([out, err]) => out + err);
    let exited = false;
    child.status.then(() => exited = true);
    const deadline = Date.now() + 10_000;
    while (!(await ping(this.port))) {
      if (exited || Date.now() > deadline) {
        await this.stop();
        const log = await this.#log;
        throw new Error(
          `redis-server did not come up on port ${this.port}: ${
            log.trim() || "no output"
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    await this.#log;
  }

  pause(): void {
    this.#child?.kill("SIGSTOP");
  }

  resume(): void {
    this.#child?.kill("SIGCONT");
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** One PING over a fresh connection: true when the answer is `+PONG`. */
async function ping(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    return n !== null &&
      new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}
