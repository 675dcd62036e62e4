/**
 * The one process spawner of the tests, the load tool and the benchmarks
 * (never imported by the library): start a program or a Deno script with the
 * permissions it needs, wait until it is ready (a log line, a port, or any
 * probe), collect or redirect its output, stop it with a signal and a grace
 * period. Every {@link Process} is `AsyncDisposable`.
 *
 * ```ts
 * await using server = spawnDeno("server.ts", ["--port", "0"], {
 *   permissions: { net: true, read: true, write: true, env: true },
 * });
 * await server.waitForLine(/server listening/);
 * ```
 *
 * @module
 */

/** The project root: relative scripts and the default working directory. */
export const ROOT: URL = new URL("../", import.meta.url);

/** Where one output stream goes. */
export type Output =
  /** Kept in memory: stderr as lines (see {@link Process.stderr}), stdout as text for {@link Process.done}. */
  | "collect"
  | "inherit"
  | "null"
  /** Written to this file (created or truncated). */
  | { file: string }
  /** Each non-empty line, as it arrives. */
  | { onLine: (line: string) => void };

/** Options of {@link spawn}. */
export interface SpawnOptions {
  /** Working directory; the project root by default. */
  cwd?: string | URL;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Default `"collect"`. */
  stdout?: Output;
  /** Default `"collect"`. */
  stderr?: Output;
}

/** One `--allow-*` permission: all, or a list of values. */
export type Grant = true | readonly string[];

/** Permissions of a Deno script: `"all"` (`-A`) or the named grants only. */
export type Permissions = "all" | {
  net?: Grant;
  read?: Grant;
  write?: Grant;
  env?: Grant;
  run?: Grant;
  sys?: Grant;
};

/** Options of {@link spawnDeno}. */
export interface DenoOptions extends SpawnOptions {
  permissions: Permissions;
  /** `--unstable-X` features besides those deno.json enables. */
  unstable?: readonly string[];
  /** Other `deno run` flags (e.g. `--cpu-prof`), before the script. */
  denoFlags?: readonly string[];
  /** `--quiet` (no download or check lines on stderr). Default true. */
  quiet?: boolean;
}

/** How a process ended, with what it wrote where collected. */
export interface ProcessOutput {
  code: number;
  signal: Deno.Signal | null;
  /** Everything on stdout when collected, else `""`. */
  stdout: string;
  /** Everything on stderr when collected, else `""`. */
  stderr: string;
}

/** Thrown when a process exits, or times out, before it became ready. */
export class ProcessStartError extends Error {
  /** @param message what was awaited, and the collected stderr */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProcessStartError";
  }
}

/** The `deno run` flags for `permissions`. */
export function permissionFlags(permissions: Permissions): string[] {
  if (permissions === "all") return ["-A"];
  return Object.entries(permissions).map(([name, grant]) =>
    grant === true ? `--allow-${name}` : `--allow-${name}=${grant.join(",")}`
  );
}

/** A running child process. Dispose it to kill it (SIGKILL) and wait for its end. */
export class Process implements AsyncDisposable {
  /** The Deno child process. */
  readonly child: Deno.ChildProcess;
  /** Collected stderr lines (with `stderr: "collect"`), growing as they arrive. */
  readonly stderr: string[] = [];
  /** Resolves when the process has exited. */
  readonly status: Promise<Deno.CommandStatus>;
  #exited = false;
  #stdout: Promise<string>;
  #stderr: Promise<void>;
  #listeners = new Set<() => void>();

  /** @internal use {@link spawn} or {@link spawnDeno} */
  constructor(child: Deno.ChildProcess, stdout: Output, stderr: Output) {
    this.child = child;
    // Exited means exited *and* its last stderr lines read (for at most
    // 500 ms: a grandchild may hold the pipe open), so that a start error
    // can quote what the process said before it died.
    this.status = child.status.then(async (s) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#stderr.catch(() => {}),
        new Promise((r) => timer = setTimeout(r, 500)),
      ]);
      clearTimeout(timer);
      this.#exited = true;
      this.#notify();
      return s;
    });
    this.#stdout = stdout === "collect"
      ? new Response(child.stdout).text()
      : drain(stdout, () => child.stdout).then(() => "");
    this.#stderr = stderr === "collect"
      ? readLines(child.stderr, (l) => {
        this.stderr.push(l);
        this.#notify();
      }, true)
      : drain(stderr, () => child.stderr);
  }

  /** The process id. */
  get pid(): number {
    return this.child.pid;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  #notify(): void {
    for (const l of this.#listeners) l();
  }

  /**
   * Resolves with the first collected stderr line matching `re`, past or
   * future.
   *
   * @throws {ProcessStartError} when the process exits first, or after `timeoutMs`
   */
  waitForLine(re: RegExp, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.stderr.find((l) => re.test(l));
        if (hit !== undefined) finish(() => resolve(hit));
        else if (this.#exited) {
          finish(() =>
            reject(this.#startError(`exited before a line matching ${re}`))
          );
        }
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              this.#startError(`no line matching ${re} within ${timeoutMs}ms`),
            )
          ),
        timeoutMs,
      );
      const finish = (then: () => void) => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        then();
      };
      this.#listeners.add(check);
      check();
    });
  }

  /**
   * Polls `probe` every `everyMs` until it returns true.
   *
   * @throws {ProcessStartError} when the process exits first, or after `timeoutMs`
   */
  async waitUntil(
    what: string,
    probe: () => boolean | Promise<boolean>,
    { timeoutMs = 10_000, everyMs = 50 } = {},
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      if (this.#exited) throw this.#startError(`exited before ${what}`);
      if (await probe()) return;
      if (Date.now() > deadline) {
        throw this.#startError(`not ${what} within ${timeoutMs}ms`);
      }
      await Promise.race([
        this.status,
        new Promise((r) => setTimeout(r, everyMs)),
      ]);
    }
  }

  /**
   * Waits until `hostname:port` accepts a TCP connection.
   *
   * @throws {ProcessStartError} when the process exits first, or after `timeoutMs`
   */
  waitForPort(
    port: number,
    hostname = "127.0.0.1",
    timeoutMs = 10_000,
  ): Promise<void> {
    return this.waitUntil(
      `accepting on ${hostname}:${port}`,
      () => accepts(hostname, port),
      { timeoutMs },
    );
  }

  #startError(what: string): ProcessStartError {
    const tail = this.stderr.length ? `:\n${this.stderr.join("\n")}` : "";
    return new ProcessStartError(`Process ${this.pid} ${what}${tail}`);
  }

  /** Resolves once the process has exited and its output is read. */
  async done(): Promise<ProcessOutput> {
    const [s, stdout] = await Promise.all([
      this.status,
      this.#stdout,
      this.#stderr,
    ]);
    return {
      code: s.code,
      signal: s.signal,
      stdout,
      stderr: this.stderr.join("\n"),
    };
  }

  /** Sends `signal` (default SIGKILL); nothing if the process is gone. */
  kill(signal: Deno.Signal = "SIGKILL"): void {
    try {
      this.child.kill(signal);
    } catch { /* already gone */ }
  }

  /**
   * Sends `signal` (default SIGTERM, a graceful shutdown), then SIGKILL if
   * the process is still running after `graceMs`; resolves with its status.
   */
  async stop(
    { signal = "SIGTERM", graceMs = 5000 }: {
      signal?: Deno.Signal;
      graceMs?: number;
    } = {},
  ): Promise<Deno.CommandStatus> {
    if (!this.#exited) this.kill(signal);
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    try {
      return await this.status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the process (SIGKILL) unless it has exited, and waits for its end and output. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#exited) this.kill("SIGKILL");
    await this.done();
  }
}

/** Starts `cmd` with `args`; stdin is closed. */
export function spawn(
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions = {},
): Process {
  const stdout = opts.stdout ?? "collect";
  const stderr = opts.stderr ?? "collect";
  const child = new Deno.Command(cmd, {
    args: [...args],
    cwd: opts.cwd ?? ROOT,
    ...(opts.env ? { env: opts.env } : {}),
    stdin: "null",
    stdout: stdioOf(stdout),
    stderr: stdioOf(stderr),
  }).spawn();
  return new Process(child, stdout, stderr);
}

/** The `deno run` argument list of {@link spawnDeno}. */
export function denoRunArgs(
  script: string | URL,
  args: readonly string[],
  opts: DenoOptions,
): string[] {
  return [
    "run",
    ...(opts.quiet ?? true ? ["--quiet"] : []),
    ...permissionFlags(opts.permissions),
    ...(opts.unstable ?? []).map((f) => `--unstable-${f}`),
    ...(opts.denoFlags ?? []),
    script instanceof URL ? script.pathname : script,
    ...args,
  ];
}

/** Runs `deno run [flags] script ...args` (a relative script from the project root). */
export function spawnDeno(
  script: string | URL,
  args: readonly string[],
  opts: DenoOptions,
): Process {
  return spawn(Deno.execPath(), denoRunArgs(script, args, opts), opts);
}

/** Runs `cmd` to its end and returns its collected output. */
export async function runToEnd(
  cmd: string,
  args: readonly string[],
  opts: Omit<SpawnOptions, "stdout" | "stderr"> = {},
): Promise<ProcessOutput> {
  await using p = spawn(cmd, args, opts);
  return await p.done();
}

/** A TCP port free on `hostname` right now (bound and released at once). */
export function freePort(hostname = "127.0.0.1"): number {
  return freePortOn([hostname]);
}

/** A port that is free on every one of `hostnames` right now (small race until used). */
export function freePortOn(hostnames: readonly string[]): number {
  for (let i = 0; i < 50; i++) {
    const probe = Deno.listen({ hostname: hostnames[0]!, port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    if (portFreeOn(hostnames, port)) return port;
  }
  throw new Error(`No port is free on all of ${hostnames.join(", ")}`);
}

function portFreeOn(hostnames: readonly string[], port: number): boolean {
  const held: Deno.Listener[] = [];
  try {
    for (const hostname of hostnames) {
      held.push(Deno.listen({ hostname, port }));
    }
    return true;
  } catch {
    return false;
  } finally {
    for (const l of held) l.close();
  }
}

/** Whether `hostname:port` accepts a TCP connection now. */
export async function accepts(
  hostname: string,
  port: number,
): Promise<boolean> {
  try {
    (await Deno.connect({ hostname, port })).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Calls `onLine` with each non-empty line of `stream` (each line, empty ones
 * too, when `keepEmpty`) and resolves at its end.
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  keepEmpty = false,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const l of lines) if (keepEmpty || l.trim()) onLine(l);
  }
  if (rest && (keepEmpty || rest.trim())) onLine(rest);
}

function stdioOf(o: Output): "piped" | "inherit" | "null" {
  return o === "inherit" || o === "null" ? o : "piped";
}

async function drain(
  o: Output,
  stream: () => ReadableStream<Uint8Array>,
): Promise<void> {
  if (o === "inherit" || o === "null") return;
  if (o === "collect") throw new TypeError("collect is read by Process");
  if ("onLine" in o) return await readLines(stream(), o.onLine);
  const file = await Deno.open(o.file, {
    write: true,
    create: true,
    truncate: true,
  });
  await stream().pipeTo(file.writable).catch(() => {});
}
