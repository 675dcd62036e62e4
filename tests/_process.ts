/**
 * Real processes for tests: the server and client CLIs run as users run them.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A child process whose stderr lines are collected and can be waited on. */
export interface Proc extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: string[];
  /** Resolves with the first stderr line matching `re` (past or future). */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit status and everything on stdout. */
  done(): Promise<{ code: number; stdout: string }>;
  kill(signal?: Deno.Signal): void;
}

/**
 * Runs `deno run -A <script> ...args` from the project root.
 */
export function spawnDeno(script: string, args: string[]): Proc {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", script, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr: string[] = [];
  const listeners = new Set<() => void>();
  const errDone = (async () => {
    let rest = "";
    for await (
      const chunk of child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      rest += chunk;
      const lines = rest.split("\n");
      rest = lines.pop()!;
      stderr.push(...lines);
      for (const l of listeners) l();
    }
    if (rest) stderr.push(rest);
    for (const l of listeners) l();
  })();
  const outText = new Response(child.stdout).text();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    child,
    stderr,
    waitForLine(re, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = stderr.find((l) => re.test(l));
          if (hit !== undefined) {
            cleanup();
            resolve(hit);
          } else if (exited) {
            cleanup();
            reject(
              new Error(
                `Process exited before a line matching ${re}:\n${
                  stderr.join("\n")
                }`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `No line matching ${re} within ${timeoutMs}ms:\n${
                stderr.join("\n")
              }`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        status.then(check);
        check();
      });
    },
    async done() {
      const [s, stdout] = await Promise.all([status, outText, errDone]);
      return { code: s.code, stdout };
    },
    kill(signal: Deno.Signal = "SIGKILL") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
    },
    async [Symbol.asyncDispose]() {
      if (!exited) this.kill("SIGKILL");
      await Promise.all([status, outText, errDone]);
    },
  };
}
