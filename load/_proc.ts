/**
 * Process and host figures from Linux `/proc`: CPU seconds and resident
 * memory of a process, and busy CPU seconds of the whole host (to tell how
 * much other work was running at the same time).
 *
 * @module
 */

/** Clock ticks per second for `/proc/PID/stat` (USER_HZ; 100 on Linux x86-64). */
const HZ = 100;

/** One reading of a process. */
export interface ProcSample {
  /** User plus system CPU time so far (s). */
  cpuS: number;
  /** Resident set now (MiB). */
  rssMiB: number;
  /** Peak resident set since start (MiB, `VmHWM`). */
  hwmMiB: number;
}

/** Reads a process's CPU and memory; `null` once it has exited. */
export async function readProc(pid: number): Promise<ProcSample | null> {
  try {
    const [stat, status] = await Promise.all([
      Deno.readTextFile(`/proc/${pid}/stat`),
      Deno.readTextFile(`/proc/${pid}/status`),
    ]);
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const kib = (key: string) =>
      Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
    return {
      cpuS: (Number(f[11]) + Number(f[12])) / HZ,
      rssMiB: kib("VmRSS") / 1024,
      hwmMiB: kib("VmHWM") / 1024,
    };
  } catch {
    return null;
  }
}

/** Busy CPU seconds of the whole host so far, summed over cores (`/proc/stat`). */
export async function hostBusyS(): Promise<number> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n", 1)[0]!;
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line.split(
    /\s+/,
  ).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / HZ;
}

/** Host-wide TCP counters that reveal connection storms (`/proc/net/netstat`). */
export interface TcpCounters {
  /** SYNs dropped because a listener's accept queue was full. */
  listenOverflows: number;
  /** SYNs sent again after no answer (a dropped SYN costs the client 1 s, then 3 s, …). */
  synRetrans: number;
}

/** Reads {@link TcpCounters}; zeros where the kernel does not report them. */
export async function tcpCounters(): Promise<TcpCounters> {
  const lines = (await Deno.readTextFile("/proc/net/netstat")).split("\n")
    .filter((l) => l.startsWith("TcpExt:"));
  const keys = lines[0]?.split(/\s+/) ?? [];
  const vals = lines[1]?.split(/\s+/) ?? [];
  const get = (k: string) => Number(vals[keys.indexOf(k)] ?? 0);
  return {
    listenOverflows: get("ListenOverflows"),
    synRetrans: get("TCPSynRetrans"),
  };
}
