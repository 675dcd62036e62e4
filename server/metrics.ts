/**
 * Server metrics and their Prometheus text exposition.
 *
 * @module
 */

/** Monotonic counters, updated in place by the server. */
export interface Counters {
  /** New sessions started. */
  sessionsStarted: number;
  /** Sessions completed and acknowledged (ACK(count)). */
  sessionsCompleted: number;
  /** Sessions that expired unresumed. */
  sessionsExpired: number;
  /** Attachments closed because the session was resumed elsewhere. */
  sessionsTakenOver: number;
  /** Successful resumes. */
  resumes: number;
  /** Numbers (and FINALs) handed to the socket. */
  numbersSent: number;
  /** Connections accepted. */
  connectionsAccepted: number;
  /** Connections refused at the connection limit. */
  connectionsRejectedBusy: number;
  /** Connections refused by the per-address handshake rate limit. */
  connectionsRejectedRate: number;
  /** Lag-based: a stream lagged with no ACK progress for the stall limit. */
  slowConsumersDropped: number;
  /** Failed store operations. */
  storeErrors: number;
  /**
   * Of those, writes the store applied but its replicas did not confirm in
   * time (Redis `WAIT`): refused with `store_unavailable`, never promised.
   */
  storeUnconfirmed: number;
  /** ACK frames received. */
  acksReceived: number;
  /** Connections closed because the client sent nothing for the client timeout. */
  clientTimeouts: number;
}

/** A fresh set of zeroed counters. */
export function newCounters(): Counters {
  return {
    sessionsStarted: 0,
    sessionsCompleted: 0,
    sessionsExpired: 0,
    sessionsTakenOver: 0,
    resumes: 0,
    numbersSent: 0,
    connectionsAccepted: 0,
    connectionsRejectedBusy: 0,
    connectionsRejectedRate: 0,
    slowConsumersDropped: 0,
    storeErrors: 0,
    storeUnconfirmed: 0,
    acksReceived: 0,
    clientTimeouts: 0,
  };
}

/**
 * A Prometheus histogram: cumulative buckets with fixed upper bounds (in
 * seconds), a sum and a count. Observing is O(buckets) with no allocation;
 * it sits on per-session and per-store-operation paths, never per number.
 */
export class PromHistogram {
  /** Upper bounds, ascending; `+Inf` is implicit. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last one is `+Inf`. */
  readonly counts: Float64Array;
  /** Sum of the observed values. */
  sum = 0;
  /** Observations. */
  count = 0;

  /** @param bounds bucket upper bounds (seconds), ascending */
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Records one value (seconds). */
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/** Buckets for latencies (s): 0.5 ms to 10 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** Buckets for the time a session spends detached before its resume (s). */
export const GAP_BUCKETS: readonly number[] = [
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
  300,
  600,
];

/** The server's histograms (all in seconds). */
export interface Histograms {
  /** HELLO or RESUME received to WELCOME written, by `kind` (`hello`, `resume`). */
  readonly welcome: Map<string, PromHistogram>;
  /** Store operation latency by `op` (failed ones included). */
  readonly storeOps: Map<string, PromHistogram>;
  /** From a session's detach to its resume, for resumes of detached sessions. */
  readonly resumeGap: PromHistogram;
  /** How late the server's 100 ms event-loop probe timer fired. */
  readonly loopLag: PromHistogram;
}

/** A fresh, empty set of histograms. */
export function newHistograms(): Histograms {
  return {
    welcome: new Map(),
    storeOps: new Map(),
    resumeGap: new PromHistogram(GAP_BUCKETS),
    loopLag: new PromHistogram(LATENCY_BUCKETS),
  };
}

/** Observes `v` in the histogram of `key` in `m`, made on first use. */
export function observeIn(
  m: Map<string, PromHistogram>,
  key: string,
  v: number,
): void {
  let h = m.get(key);
  if (h === undefined) m.set(key, h = new PromHistogram(LATENCY_BUCKETS));
  h.observe(v);
}

/** The standard `process_*` figures; a field is absent where the platform cannot tell. */
export interface ProcessFigures {
  cpuSeconds: number;
  residentBytes: number;
  startTimeSeconds: number;
  openFds?: number | undefined;
  maxFds?: number | undefined;
}

/** Everything `/metrics` shows. */
export interface MetricsSnapshot {
  /** Open client connections. */
  connections: number;
  /** Sessions this server holds, attached or awaiting resume. */
  sessions: number;
  /** Numbers sent and not yet acknowledged, summed over the live streams. */
  unackedNumbers: number;
  /** The largest `sent − acked` any stream reached since the server started. */
  unackedPeak: number;
  /** The flow-control window announced in WELCOME (numbers). */
  window: number;
  /** Monotonic counters, updated in place by the server. */
  counters: Counters;
  /** Handshake refusals by error name. */
  refusals: ReadonlyMap<string, number>;
  /** Store operations by operation name. */
  storeOps: ReadonlyMap<string, number>;
  /** Latency histograms, when the server keeps them. */
  histograms?: Histograms | undefined;
  /** The process's own figures (`process_*`), when read. */
  process?: ProcessFigures | undefined;
}

function line(
  out: string[],
  name: string,
  type: "gauge" | "counter",
  help: string,
  value: number,
): void {
  out.push(
    `# HELP ${name} ${help}`,
    `# TYPE ${name} ${type}`,
    `${name} ${value}`,
  );
}

function labelled(
  out: string[],
  name: string,
  help: string,
  label: string,
  values: ReadonlyMap<string, number>,
): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
  for (const [k, v] of values) out.push(`${name}{${label}="${k}"} ${v}`);
}

/** A label value, escaped for the text format. */
function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function histogram(
  out: string[],
  name: string,
  help: string,
  series: Iterable<[string, PromHistogram]>,
  label?: string,
): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  for (const [key, h] of series) {
    const l = label === undefined ? "" : `${label}="${esc(key)}",`;
    const plain = label === undefined ? "" : `{${label}="${esc(key)}"}`;
    let cum = 0;
    h.bounds.forEach((b, i) => {
      cum += h.counts[i]!;
      out.push(`${name}_bucket{${l}le="${b}"} ${cum}`);
    });
    out.push(`${name}_bucket{${l}le="+Inf"} ${h.count}`);
    out.push(
      `${name}_sum${plain} ${h.sum}`,
      `${name}_count${plain} ${h.count}`,
    );
  }
}

function processLines(out: string[], p: ProcessFigures): void {
  line(
    out,
    "process_cpu_seconds_total",
    "counter",
    "Total user and system CPU time spent in seconds.",
    p.cpuSeconds,
  );
  line(
    out,
    "process_resident_memory_bytes",
    "gauge",
    "Resident memory size in bytes.",
    p.residentBytes,
  );
  line(
    out,
    "process_start_time_seconds",
    "gauge",
    "Start time of the process since unix epoch in seconds.",
    p.startTimeSeconds,
  );
  if (p.openFds !== undefined) {
    line(
      out,
      "process_open_fds",
      "gauge",
      "Number of open file descriptors.",
      p.openFds,
    );
  }
  if (p.maxFds !== undefined) {
    line(
      out,
      "process_max_fds",
      "gauge",
      "Maximum number of open file descriptors.",
      p.maxFds,
    );
  }
}

/**
 * Renders a snapshot in the Prometheus text format (version 0.0.4).
 *
 * @example
 * ```ts
 * const text = renderPrometheus(server.metrics());
 * ```
 */
export function renderPrometheus(m: MetricsSnapshot): string {
  const c = m.counters;
  const out: string[] = [];
  line(
    out,
    "seqstream_connections",
    "gauge",
    "Open client connections.",
    m.connections,
  );
  line(
    out,
    "seqstream_sessions",
    "gauge",
    "Sessions this server holds, attached or awaiting resume.",
    m.sessions,
  );
  line(
    out,
    "seqstream_unacked_numbers",
    "gauge",
    "Numbers sent and not yet acknowledged, over all live streams.",
    m.unackedNumbers,
  );
  line(
    out,
    "seqstream_unacked_peak",
    "gauge",
    "Largest count of unacknowledged numbers any one stream had in flight since start.",
    m.unackedPeak,
  );
  line(
    out,
    "seqstream_window",
    "gauge",
    "Flow-control window: most numbers in flight per stream.",
    m.window,
  );
  line(
    out,
    "seqstream_sessions_started_total",
    "counter",
    "New sessions started.",
    c.sessionsStarted,
  );
  line(
    out,
    "seqstream_sessions_completed_total",
    "counter",
    "Sessions completed and acknowledged.",
    c.sessionsCompleted,
  );
  line(
    out,
    "seqstream_sessions_expired_total",
    "counter",
    "Sessions expired unresumed.",
    c.sessionsExpired,
  );
  line(
    out,
    "seqstream_sessions_taken_over_total",
    "counter",
    "Attachments closed because the session was resumed elsewhere.",
    c.sessionsTakenOver,
  );
  line(
    out,
    "seqstream_resumes_total",
    "counter",
    "Successful resumes.",
    c.resumes,
  );
  line(
    out,
    "seqstream_numbers_sent_total",
    "counter",
    "Numbers written to clients.",
    c.numbersSent,
  );
  line(
    out,
    "seqstream_connections_accepted_total",
    "counter",
    "Connections accepted.",
    c.connectionsAccepted,
  );
  line(
    out,
    "seqstream_connections_rejected_busy_total",
    "counter",
    "Connections refused at --max-connections.",
    c.connectionsRejectedBusy,
  );
  line(
    out,
    "seqstream_connections_rejected_rate_total",
    "counter",
    "Connections refused at --max-handshakes-per-sec.",
    c.connectionsRejectedRate,
  );
  line(
    out,
    "seqstream_slow_consumers_dropped_total",
    "counter",
    "Connections dropped because the client lagged with no acknowledgement progress for the stall limit.",
    c.slowConsumersDropped,
  );
  line(
    out,
    "seqstream_client_timeouts_total",
    "counter",
    "Connections closed because the client sent nothing for the client timeout.",
    c.clientTimeouts,
  );
  line(
    out,
    "seqstream_acks_received_total",
    "counter",
    "Delivery acknowledgements received.",
    c.acksReceived,
  );
  line(
    out,
    "seqstream_store_errors_total",
    "counter",
    "Failed store operations.",
    c.storeErrors,
  );
  line(
    out,
    "seqstream_store_unconfirmed_total",
    "counter",
    "Store writes not confirmed by enough replicas in time (refused as store_unavailable).",
    c.storeUnconfirmed,
  );
  labelled(
    out,
    "seqstream_store_ops_total",
    "Store operations by kind.",
    "op",
    m.storeOps,
  );
  labelled(
    out,
    "seqstream_handshake_failures_total",
    "Hellos and resumes refused, by error code.",
    "code",
    m.refusals,
  );
  const h = m.histograms;
  if (h !== undefined) {
    histogram(
      out,
      "seqstream_welcome_seconds",
      "Time from a HELLO or RESUME received to its WELCOME written (store round trips included), by kind.",
      h.welcome,
      "kind",
    );
    histogram(
      out,
      "seqstream_store_op_seconds",
      "Store operation latency by operation, failed ones included.",
      h.storeOps,
      "op",
    );
    histogram(
      out,
      "seqstream_resume_gap_seconds",
      "Time a session spent detached before it was resumed (store clock).",
      [["", h.resumeGap]],
    );
    histogram(
      out,
      "seqstream_event_loop_lag_seconds",
      "How late the server's 100 ms event-loop probe fired.",
      [["", h.loopLag]],
    );
  }
  if (m.process !== undefined) processLines(out, m.process);
  return out.join("\n") + "\n";
}
