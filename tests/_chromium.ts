/**
 * Headless Chromium (Debian's `chromium` package) driven over the DevTools
 * protocol with the runtime's own WebSocket: open a page, evaluate in it,
 * record every network request it makes, take a screenshot. No puppeteer.
 *
 * @module
 */

/** The browser binary, or why there is none (a test skip names the reason). */
export function findChromium(): { path: string } | { missing: string } {
  for (const path of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    try {
      if (Deno.statSync(path).isFile) return { path };
    } catch { /* next */ }
  }
  return {
    missing:
      "chromium is not installed (apt-get install -y chromium; .ci/run does)",
  };
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** One page in a headless browser. */
export class Browser implements AsyncDisposable {
  /** Every URL the page requested, in order. */
  readonly requests: string[] = [];
  /** Console messages and uncaught exceptions of the page. */
  readonly errors: string[] = [];
  readonly #proc: Deno.ChildProcess;
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, Pending>();
  readonly #dir: string;
  #next = 1;
  #loaded: PromiseWithResolvers<void> | undefined;

  private constructor(proc: Deno.ChildProcess, ws: WebSocket, dir: string) {
    this.#proc = proc;
    this.#ws = ws;
    this.#dir = dir;
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data as string);
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(JSON.stringify(msg.error)));
        else p?.resolve(msg.result);
      } else if (msg.method === "Network.requestWillBeSent") {
        this.requests.push(msg.params.request.url);
      } else if (msg.method === "Page.loadEventFired") {
        this.#loaded?.resolve();
      } else if (msg.method === "Runtime.exceptionThrown") {
        this.errors.push(JSON.stringify(msg.params.exceptionDetails));
      } else if (
        msg.method === "Log.entryAdded" && msg.params.entry.level === "error"
      ) {
        this.errors.push(
          `${msg.params.entry.text} ${msg.params.entry.url ?? ""}`,
        );
      }
    };
  }

  /** Starts Chromium and attaches to its first page (1280×900). */
  static async launch(path: string): Promise<Browser> {
    const dir = await Deno.makeTempDir({ prefix: "seqstream-chromium-" });
    const proc = new Deno.Command(path, {
      args: [
        "--headless",
        "--no-sandbox", // tests run as root
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,900",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        `--user-data-dir=${dir}`,
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const port = await activePort(dir, proc);
      const list = await (await fetch(`http://127.0.0.1:${port}/json/list`))
        .json() as { type: string; webSocketDebuggerUrl: string }[];
      const page = list.find((t) => t.type === "page");
      if (!page) throw new Error("chromium opened no page");
      const ws = new WebSocket(page.webSocketDebuggerUrl);
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("DevTools WebSocket failed"));
      });
      const b = new Browser(proc, ws, dir);
      await b.send("Network.enable");
      await b.send("Page.enable");
      await b.send("Runtime.enable");
      await b.send("Log.enable");
      return b;
    } catch (err) {
      proc.kill("SIGKILL");
      await proc.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  /** Sends one DevTools command. */
  send(method: string, params: unknown = {}): Promise<unknown> {
    const id = this.#next++;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.#pending.set(id, { resolve, reject });
    this.#ws.send(JSON.stringify({ id, method, params }));
    return promise;
  }

  /** Opens `url` and waits for its load event. */
  async goto(url: string): Promise<void> {
    this.#loaded = Promise.withResolvers();
    await this.send("Page.navigate", { url });
    await this.#loaded.promise;
  }

  /**
   * Leaves the current page for `about:blank` and forgets its requests and
   * errors: a browser shared by several tests starts each one clean.
   */
  async reset(): Promise<void> {
    await this.goto("about:blank");
    this.requests.length = 0;
    this.errors.length = 0;
  }

  /** Evaluates `expr` in the page (awaiting a promise) and returns its JSON value. */
  async eval<T>(expr: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", {
      expression: expr,
      awaitPromise: true,
      returnByValue: true,
    }) as { result: { value: T }; exceptionDetails?: unknown };
    if (r.exceptionDetails) {
      throw new Error(`page threw: ${JSON.stringify(r.exceptionDetails)}`);
    }
    return r.result.value;
  }

  /** Polls `expr` in the page until it is truthy; throws after `ms`. */
  async until(expr: string, what: string, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await this.eval<boolean>(`Boolean(${expr})`))) {
      if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A PNG of the whole page. */
  async screenshot(): Promise<Uint8Array> {
    const r = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
    }) as { data: string };
    return Uint8Array.from(atob(r.data), (c) => c.charCodeAt(0));
  }

  /** Closes the browser and removes its profile. */
  async [Symbol.asyncDispose](): Promise<void> {
    const closed = new Promise((r) => {
      this.#ws.onclose = r;
    });
    this.#ws.close();
    await closed;
    try {
      this.#proc.kill("SIGTERM");
    } catch { /* exited */ }
    await this.#proc.status;
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/** The DevTools port Chromium writes into its profile once it listens. */
async function activePort(dir: string, proc: Deno.ChildProcess) {
  let exited = false;
  proc.status.then(() => exited = true);
  const end = Date.now() + 15_000;
  while (Date.now() < end && !exited) {
    try {
      const text = await Deno.readTextFile(`${dir}/DevToolsActivePort`);
      const port = Number(text.split("\n")[0]);
      if (port > 0) return port;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    exited ? "chromium exited at start" : "chromium did not open DevTools",
  );
}
