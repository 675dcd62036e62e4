/**
 * Network namespaces for the partition tests (Jepsen style, on one host):
 * each run gets a namespace of its own with only its loopback up, so every
 * process of the topology listens on 127.0.0.1 inside it and nothing leaves
 * it, and `iptables` rules there cut links between ports without touching
 * the host. Needs root (or CAP_NET_ADMIN), `ip` and `iptables`.
 *
 * @module
 */

/** Runs a command; resolves its status and output (never rejects for a failure). */
export async function sh(
  cmd: string,
  args: string[],
): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return {
      ok: r.success,
      out: dec.decode(r.stdout) + dec.decode(r.stderr),
    };
  } catch (e) {
    return { ok: false, out: String((e as Error).message ?? e) };
  }
}

/**
 * Why network namespaces cannot be used here, or `undefined` when they can:
 * tries to create one, bring its loopback up and add an iptables rule in it.
 */
export async function netnsUnavailable(): Promise<string | undefined> {
  // Unique within the process too: the partition test files probe at once
  // under `deno test --parallel` (one process, a worker each).
  const name = `sqprobe${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const add = await sh("ip", ["netns", "add", name]);
  if (!add.ok) return `ip netns add failed: ${add.out.trim().split("\n")[0]}`;
  try {
    const lo = await sh("ip", [
      "netns",
      "exec",
      name,
      "ip",
      "link",
      "set",
      "lo",
      "up",
    ]);
    if (!lo.ok) return `ip link set lo up failed: ${lo.out.trim()}`;
    const rule = await sh("ip", [
      "netns",
      "exec",
      name,
      "iptables",
      "-A",
      "INPUT",
      "-p",
      "tcp",
      "--dport",
      "9",
      "-j",
      "DROP",
    ]);
    if (!rule.ok) return `iptables failed: ${rule.out.trim()}`;
    return undefined;
  } finally {
    await sh("ip", ["netns", "del", name]);
  }
}

/** A namespace of this process's, deleted (with every process in it) on dispose. */
export interface Netns extends AsyncDisposable {
  readonly name: string;
  /** The arguments that run `cmd args…` inside it: `ip netns exec NAME cmd args…`. */
  exec(cmd: string, args: string[]): { cmd: string; args: string[] };
}

/**
 * Creates namespace `seqstream-<tag>-<pid>` with its loopback up. Disposing
 * it SIGKILLs every process still inside (each one by its pid, as `ip netns
 * pids` lists them: they are this run's), then deletes it.
 *
 * @throws {Error} when it cannot be created
 */
export async function createNetns(tag: string): Promise<Netns> {
  const name = `seqstream-${tag}-${Deno.pid}`;
  await sh("ip", ["netns", "del", name]); // a leftover of an earlier run of this pid
  const add = await sh("ip", ["netns", "add", name]);
  if (!add.ok) throw new Error(`ip netns add ${name}: ${add.out.trim()}`);
  const lo = await sh("ip", [
    "netns",
    "exec",
    name,
    "ip",
    "link",
    "set",
    "lo",
    "up",
  ]);
  if (!lo.ok) {
    await sh("ip", ["netns", "del", name]);
    throw new Error(`ip link set lo up in ${name}: ${lo.out.trim()}`);
  }
  return {
    name,
    exec: (cmd, args) => ({
      cmd: "ip",
      args: ["netns", "exec", name, cmd, ...args],
    }),
    async [Symbol.asyncDispose]() {
      for (let round = 0; round < 20; round++) {
        const pids = (await sh("ip", ["netns", "pids", name])).out
          .split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number);
        if (pids.length === 0) break;
        for (const pid of pids) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // Gone already.
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await sh("ip", ["netns", "del", name]);
    },
  };
}

/**
 * The iptables rules that cut every TCP connection to or from `port`
 * except the ones on `keep` (the local ports of the connections that stay):
 * every packet of the others is answered with a reset, so established links
 * break at their next packet and new ones are refused. (A reset, not a
 * silent drop: an ioredis client whose primary goes silent waits on its
 * command timeouts without reconnecting, and the partition would only stall
 * the majority side instead of letting it fail over: see docs/durability.md.)
 * Run inside the namespace. Returns the rules, to delete with {@link heal}.
 */
export async function isolatePort(
  port: number,
  keep: readonly number[],
): Promise<string[][]> {
  const except = keep.length > 0
    ? ["-m", "multiport", "!", "--ports", keep.join(",")]
    : [];
  // The resets themselves pass (else the reset answering a packet to `port`,
  // which comes from `port`, would be dropped by the second rule).
  const cut = [
    "-m",
    "tcp",
    "!",
    "--tcp-flags",
    "RST",
    "RST",
    "-j",
    "REJECT",
    "--reject-with",
    "tcp-reset",
  ];
  const rules = [
    ["INPUT", "-p", "tcp", "--dport", String(port), ...except, ...cut],
    ["INPUT", "-p", "tcp", "--sport", String(port), ...except, ...cut],
  ];
  for (const r of rules) {
    const res = await sh("iptables", ["-I", ...r]);
    if (!res.ok) throw new Error(`iptables -I ${r.join(" ")}: ${res.out}`);
  }
  return rules;
}

/** Deletes rules made by {@link isolatePort}. */
export async function heal(rules: readonly string[][]): Promise<void> {
  for (const r of rules) await sh("iptables", ["-D", ...r]);
}

/**
 * The local ports of the TCP connections process `pid` has open to
 * 127.0.0.1:`port` (from `ss -tnp`), inside the current namespace.
 */
export async function connectionsOf(
  pid: number,
  port: number,
): Promise<number[]> {
  const r = await sh("ss", ["-Htnp", "state", "established"]);
  const out: number[] = [];
  for (const line of r.out.split("\n")) {
    if (!line.includes(`pid=${pid},`)) continue;
    const f = line.trim().split(/\s+/);
    // Recv-Q Send-Q Local Peer Process
    const local = f[2], peer = f[3];
    if (peer === `127.0.0.1:${port}` && local) {
      out.push(Number(local.split(":").pop()));
    }
  }
  return out;
}
